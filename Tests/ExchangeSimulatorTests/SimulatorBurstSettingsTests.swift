import Testing

@testable import ExchangeSimulator

/// `tape simulate --burst-probability/--burst-length/--burst-rate` reach the market engine, and
/// change what it generates.
@Suite struct SimulatorBurstSettingsTests {
    @Test func burstSettingsReachTheMarket() {
        var configuration = SimulatorConfiguration()
        configuration.rate = 400
        configuration.burstProbability = 0.25
        configuration.burstLength = 7
        configuration.burstRateMultiplier = 3.5
        let market = PoloniexSimulator.marketConfiguration(configuration, now: 1_700_000_000)
        #expect(market.burstProbability == 0.25)
        #expect(market.burstLength == 7)
        #expect(market.burstRateMultiplier == 3.5)
        #expect(market.tradesPerSecond == 400)
        #expect(market.startTime == 1_700_000_000_000)

        // Short, frequent bursts: many start, each about 7 orders long (1 to 14).
        var engine = MarketSimulator(configuration: market)
        for _ in 0..<20_000 { _ = engine.nextOrder() }
        #expect(engine.burstsStarted > 500)
        var steadyConfiguration = configuration
        steadyConfiguration.burstProbability = 0
        var steady = MarketSimulator(configuration: PoloniexSimulator.marketConfiguration(steadyConfiguration, now: 1_700_000_000))
        for _ in 0..<20_000 { _ = steady.nextOrder() }
        #expect(steady.burstsStarted == 0)
    }
}
