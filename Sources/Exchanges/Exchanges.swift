@_exported import MarketData
