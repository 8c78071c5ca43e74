public enum MarketDataPlaceholder {}
