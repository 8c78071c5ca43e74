/// The dashboard page served at `/`: one self-contained HTML document — inline CSS and JS,
/// nothing fetched from elsewhere, so it works offline.
///
/// It loads markets, candles, trades, stats and open gaps from the REST API, then follows `/ws`,
/// and polls `/health` for the status dot (green: live and ok, amber: degraded with the reasons in
/// its text and tooltip, red: not connected). Open trade gaps shade the windows they overlap;
/// candles with `"complete":false` are drawn hollow with a dashed outline (tooltip on hover). For
/// tests it writes what it drew into the DOM: `body[data-candles-drawn]` (sum over charts),
/// `body[data-live-updates]` (trade and candle events applied), `body[data-trades-shown]`,
/// `body[data-ready]`, `body[data-health]`, `body[data-gap-updates]`, and per chart
/// `canvas[data-candles-drawn]`, `canvas[data-incomplete-drawn]`, `canvas[data-gap-slots]`,
/// `[data-last-close]`, `[data-open-gaps]`; order books (the `book` channel of `/ws`, first read
/// from `/api/book`): per card `[data-best-bid]`, `[data-best-ask]`, `[data-book-sequence]`,
/// `canvas.depth[data-levels-drawn]`, and `body[data-book-updates]`.
/// A `?token=` in the page URL is used as the bearer token; `?interval=` picks the start interval.
enum Dashboard {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Tape — live market data</title>
        <style>
          :root { --bg:#0d1117; --panel:#161b22; --line:#30363d; --text:#e6edf3; --dim:#8b949e; --up:#26a69a; --down:#ef5350; --accent:#58a6ff; --warn:#d29922; }
          * { box-sizing: border-box; }
          body { margin:0; background:var(--bg); color:var(--text); font:13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
          header { display:flex; align-items:center; gap:16px; padding:10px 18px; border-bottom:1px solid var(--line); background:var(--panel); }
          header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
          header h1 span { color:var(--accent); }
          .intervals button { background:transparent; color:var(--dim); border:1px solid var(--line); padding:3px 10px; cursor:pointer; font:inherit; }
          .intervals button:first-child { border-radius:4px 0 0 4px; } .intervals button:last-child { border-radius:0 4px 4px 0; }
          .intervals button.on { background:var(--accent); color:#0d1117; border-color:var(--accent); font-weight:600; }
          #status { margin-left:auto; color:var(--dim); display:flex; align-items:center; gap:6px; }
          #status i { width:9px; height:9px; border-radius:50%; background:var(--down); display:inline-block; }
          #status.live i { background:var(--up); box-shadow:0 0 6px var(--up); }
          #status.degraded i { background:var(--warn); box-shadow:0 0 6px var(--warn); }
          #status.degraded span { color:var(--warn); }
          #status span { max-width:52vw; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
          #status { cursor:default; }
          .gapbadge { color:var(--warn); font-size:12px; font-weight:500; cursor:help; }
          main { display:grid; grid-template-columns: 1fr 340px; gap:14px; padding:14px 18px; }
          #charts { display:grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap:14px; align-content:start; }
          .card { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
          .card h2 { font-size:14px; margin:0 0 6px; display:flex; gap:10px; align-items:baseline; }
          .card h2 small { color:var(--dim); font-weight:400; }
          .card h2 .px { margin-left:auto; font-variant-numeric:tabular-nums; }
          .card canvas { width:100%; height:260px; display:block; }
          .card canvas.depth { height:90px; margin-top:6px; }
          .tob { display:flex; gap:12px; color:var(--dim); font-variant-numeric:tabular-nums; margin-top:6px; font-size:12px; }
          .tob .v { color:var(--text); font-weight:500; }
          .up { color:var(--up); } .down { color:var(--down); }
          aside { display:flex; flex-direction:column; gap:14px; min-width:0; }
          aside h3 { margin:0 0 8px; font-size:13px; text-transform:uppercase; letter-spacing:.8px; color:var(--dim); }
          table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
          td, th { padding:3px 4px; text-align:right; white-space:nowrap; } th { color:var(--dim); font-weight:500; }
          #health td:first-child { white-space:normal; }
          td:first-child, th:first-child { text-align:left; }
          #tape { height:420px; overflow:hidden; }
          #tape tr.new { animation: flash 1s ease-out; }
          @keyframes flash { from { background:#1f6feb44; } to { background:transparent; } }
          .empty { color:var(--dim); padding:20px; text-align:center; }
          footer { color:var(--dim); padding:0 18px 14px; font-size:12px; }
        </style>
        </head>
        <body data-ready="0" data-candles-drawn="0" data-live-updates="0" data-trades-shown="0" data-health="unknown" data-gap-updates="0" data-book-updates="0">
        <header>
          <h1>▮ <span>Tape</span></h1>
          <div class="intervals" id="intervals"><button data-i="1m">1m</button><button data-i="5m">5m</button><button data-i="1h">1h</button></div>
          <div id="status"><i></i><span>connecting…</span></div>
        </header>
        <main>
          <section id="charts"><div class="card empty" id="nomarkets">No markets yet — waiting for candles and trades.</div></section>
          <aside>
            <div class="card"><h3>Exchanges</h3>
              <table><thead><tr><th>exchange</th><th>trades/s</th><th>frames/s</th><th>lag ms</th><th>reconn.</th></tr></thead><tbody id="health"></tbody></table>
              <div id="lag" style="color:var(--dim);margin-top:6px"></div>
            </div>
            <div class="card"><h3>Trades</h3>
              <div id="tape"><table><thead><tr><th>time</th><th>market</th><th>price</th><th>qty</th></tr></thead><tbody id="trades"></tbody></table></div>
            </div>
          </aside>
        </main>
        <footer>REST: <code>/api/markets</code> · <code>/api/candles</code> · <code>/api/trades</code> · <code>/api/stats</code> · <code>/api/gaps</code> · <code>/api/book</code> · <code>/health</code> · live: <code>/ws</code> · <code>/metrics</code> · shaded: open gaps (trades may be missing) · hollow candle: incomplete</footer>
        <script>
        "use strict";
        const params = new URLSearchParams(location.search);
        const token = params.get("token") || "";
        const authHeaders = token ? { Authorization: "Bearer " + token } : {};
        const MAX_CHARTS = 8, MAX_TRADES = 60;
        let interval = ["1m","5m","1h"].includes(params.get("interval")) ? params.get("interval") : "1m";
        const charts = new Map();   // "exchange:SYMBOL" -> {symbol, candles, gaps, canvas, card, px, badge, layout}
        let trades = [], liveUpdates = 0, gapUpdates = 0, bookUpdates = 0, ws = null, wsBackoff = 500, wasConnected = false, wsOpen = false, authFailed = false, health = null;

        async function api(path) {
          const r = await fetch(path, { headers: authHeaders, cache: "no-store" });
          if (r.status === 401) { authFailed = true; setStatus("down", token ? "the token in the URL is wrong" : "this server needs a token: open /?token=…"); }
          if (!r.ok) { let m = r.status + ""; try { m = (await r.json()).error.message; } catch (e) {} throw new Error(path + ": " + m); }
          return r.json();
        }
        const esc = v => String(v).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
        function fmtPrice(s) { const v = parseFloat(s); if (!isFinite(v)) return "–"; return v >= 1000 ? v.toFixed(2) : v >= 1 ? v.toFixed(4) : v.toPrecision(4); }
        function fmtTime(ms, withSeconds) { const d = new Date(ms); const p = n => String(n).padStart(2, "0");
          return p(d.getUTCHours()) + ":" + p(d.getUTCMinutes()) + (withSeconds ? ":" + p(d.getUTCSeconds()) : ""); }
        function setStatus(kind, text, title) {   // kind: "live", "degraded" or "down"
          const s = document.getElementById("status");
          s.classList.toggle("live", kind === "live"); s.classList.toggle("degraded", kind === "degraded");
          s.querySelector("span").textContent = text; s.title = title || "";
        }
        // The dot: red while /ws is not connected, amber while /health says degraded, green otherwise.
        function renderStatus() {
          if (authFailed) return;
          if (!wsOpen) { setStatus("down", wasConnected ? "reconnecting…" : "connecting…"); return; }
          if (health && health.status === "degraded") {
            const r = health.reasons || [];
            setStatus("degraded", "degraded: " + (r[0] || "see /health") + (r.length > 1 ? ` (+${r.length - 1} more)` : ""), r.join("\n"));
          } else setStatus("live", "live", health ? "every health check is ok" : "");
        }
        async function loadHealth() {
          try {
            const r = await fetch("/health", { cache: "no-store" });
            health = await r.json(); document.body.dataset.health = health.status;
          } catch (e) { health = null; document.body.dataset.health = "unknown"; }
          renderStatus();
        }

        function ensureChart(symbol) {
          if (charts.has(symbol) || charts.size >= MAX_CHARTS) return charts.get(symbol);
          document.getElementById("nomarkets")?.remove();
          const [exchange, pair] = symbol.split(":");
          const card = document.createElement("div");
          card.className = "card"; card.dataset.symbol = symbol;
          card.innerHTML = `<h2>${esc(pair)} <small>${esc(exchange)}</small><span class="gapbadge" hidden></span><span class="px">–</span></h2>` +
            `<canvas data-candles-drawn="0" data-incomplete-drawn="0" data-gap-slots="0"></canvas>` +
            `<div class="tob">bid <span class="v bid">–</span> ask <span class="v ask">–</span> spread <span class="v spread">–</span> mid <span class="v mid">–</span></div>` +
            `<canvas class="depth" data-levels-drawn="0"></canvas>`;
          card.dataset.openGaps = "0";
          document.getElementById("charts").appendChild(card);
          const chart = { symbol, candles: [], gaps: new Map(), card, canvas: card.querySelector("canvas"), px: card.querySelector(".px"),
            badge: card.querySelector(".gapbadge"), layout: null, book: null, depth: card.querySelector("canvas.depth") };
          charts.set(symbol, chart);
          new ResizeObserver(() => draw(chart)).observe(chart.canvas);
          new ResizeObserver(() => drawBook(chart)).observe(chart.depth);
          chart.canvas.addEventListener("mousemove", ev => hover(chart, ev));
          return chart;
        }

        // Open gaps of a chart, keyed by channel, from and to (a repaired record removes its gap).
        const gapKey = g => g.channel + ":" + g.from + ":" + g.to;
        function applyGap(chart, g) { if (g.repaired) chart.gaps.delete(gapKey(g)); else chart.gaps.set(gapKey(g), g); }
        const tradeGaps = chart => [...chart.gaps.values()].filter(g => g.channel === "trades");
        function renderGapBadge(chart) {
          const open = [...chart.gaps.values()];
          chart.card.dataset.openGaps = open.length;
          chart.badge.hidden = open.length === 0;
          chart.badge.textContent = open.length ? `⚠ ${open.length} open gap${open.length > 1 ? "s" : ""}` : "";
          chart.badge.title = open.slice(0, 8).map(g => `${g.channel} ${fmtTime(g.from, true)}–${fmtTime(g.to, true)} UTC: ${g.reason}`).join("\n");
        }
        async function loadGaps() {
          try {
            const r = await api("/api/gaps?open=true&limit=1000");
            for (const c of charts.values()) c.gaps.clear();
            for (const g of r.gaps) { const c = charts.get(g.exchange + ":" + g.symbol); if (c) applyGap(c, g); }
            for (const c of charts.values()) { renderGapBadge(c); draw(c); }
          } catch (e) { console.warn(e); }
        }
        function hover(chart, ev) {
          const L = chart.layout; if (!L) return;
          const i = Math.floor((ev.clientX - chart.canvas.getBoundingClientRect().left - L.x0) / L.slot), k = L.shown[i];
          if (!k) { chart.canvas.title = ""; return; }
          let t = `${fmtTime(k.start)} UTC  O ${fmtPrice(k.open)}  H ${fmtPrice(k.high)}  L ${fmtPrice(k.low)}  C ${fmtPrice(k.close)}  ${k.trades} trades`;
          if (k.complete === false) t += "\nIncomplete: an unrepaired gap overlaps this window, so trades may be missing from it.";
          for (const g of tradeGaps(chart)) if (g.from < k.end && g.to >= k.start) t += `\nOpen gap ${fmtTime(g.from, true)}–${fmtTime(g.to, true)}: ${g.reason}`;
          chart.canvas.title = t;
        }

        function draw(chart) {
          const c = chart.canvas, dpr = window.devicePixelRatio || 1;
          const w = Math.max(100, c.clientWidth), h = Math.max(100, c.clientHeight);
          if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
          const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
          const axisW = 70, timeH = 18, volH = Math.round((h - timeH) * 0.18), plotW = w - axisW, priceH = h - timeH - volH - 6;
          const all = chart.candles, slot = Math.max(4, Math.min(16, plotW / Math.max(1, all.length)));
          const shown = all.slice(-Math.floor(plotW / slot));
          g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
          if (!shown.length) { chart.layout = null; g.fillStyle = "#8b949e"; g.fillText("no " + interval + " candles yet", 10, h / 2); publish(chart, 0, 0, 0); return; }
          let lo = Infinity, hi = -Infinity, vmax = 0;
          for (const k of shown) { lo = Math.min(lo, +k.low); hi = Math.max(hi, +k.high); vmax = Math.max(vmax, +k.volume); }
          if (hi === lo) { hi += Math.abs(hi) * 0.001 || 1; lo -= Math.abs(lo) * 0.001 || 1; }
          const pad = (hi - lo) * 0.06; hi += pad; lo -= pad;
          const y = p => 10 + (hi - p) / (hi - lo) * (priceH - 10);
          const lastY = Math.round(y(+shown[shown.length - 1].close)) + 0.5;
          // grid and price axis (labels that would sit under the last-price tag are left out)
          g.strokeStyle = "#30363d"; g.fillStyle = "#8b949e"; g.lineWidth = 1;
          for (let i = 0; i <= 4; i++) { const p = lo + (hi - lo) * i / 4, yy = Math.round(y(p)) + 0.5;
            g.beginPath(); g.moveTo(0, yy); g.lineTo(plotW, yy); g.stroke(); if (Math.abs(yy - lastY) > 16) g.fillText(fmtPrice(p), plotW + 6, yy); }
          const x0 = plotW - shown.length * slot, bw = Math.max(1, Math.floor(slot * 0.7));
          chart.layout = { x0, slot, shown };
          // open trade gaps: the windows they overlap, shaded; one between two windows, a thin band there
          let gapSlots = 0;
          const gaps = tradeGaps(chart);
          if (gaps.length) {
            g.fillStyle = "rgba(210,153,34,0.22)";
            shown.forEach((k, i) => {
              if (gaps.some(gp => gp.from < k.end && gp.to >= k.start)) { g.fillRect(x0 + i * slot, 0, slot, h - timeH); gapSlots++; }
            });
            for (const gp of gaps) for (let i = 0; i + 1 < shown.length; i++) {
              if (shown[i].end <= gp.from && gp.to < shown[i + 1].start) { g.fillRect(x0 + (i + 1) * slot - 2, 0, 4, h - timeH); gapSlots++; }
            }
          }
          let incomplete = 0;
          shown.forEach((k, i) => {
            const o = +k.open, cl = +k.close, up = cl >= o, x = Math.round(x0 + i * slot + slot / 2);
            g.strokeStyle = g.fillStyle = up ? "#26a69a" : "#ef5350";
            g.beginPath(); g.moveTo(x + 0.5, y(+k.high)); g.lineTo(x + 0.5, y(+k.low)); g.stroke();
            const top = y(Math.max(o, cl)), bh = Math.max(1, Math.abs(y(o) - y(cl)));
            if (k.complete === false) {   // trades may be missing: hollow, dashed
              incomplete++; g.setLineDash([2, 2]); g.strokeRect(x - Math.floor(bw / 2) + 0.5, top + 0.5, Math.max(1, bw - 1), Math.max(1, bh - 1)); g.setLineDash([]);
            } else g.fillRect(x - Math.floor(bw / 2), top, bw, bh);
            const vh = vmax > 0 ? (+k.volume / vmax) * volH : 0;
            g.globalAlpha = k.complete === false ? 0.15 : 0.35; g.fillRect(x - Math.floor(bw / 2), h - timeH - vh, bw, vh); g.globalAlpha = 1;
          });
          // time labels
          g.fillStyle = "#8b949e"; const every = Math.max(1, Math.ceil(70 / slot));
          for (let i = shown.length - 1; i >= 0; i -= every) g.fillText(fmtTime(shown[i].start), x0 + i * slot - 14, h - timeH / 2);
          // last price line
          const last = shown[shown.length - 1], ly = lastY;
          g.setLineDash([3, 3]); g.strokeStyle = "#58a6ff"; g.beginPath(); g.moveTo(0, ly); g.lineTo(plotW, ly); g.stroke(); g.setLineDash([]);
          g.fillStyle = "#58a6ff"; g.fillRect(plotW + 2, ly - 8, axisW - 4, 16); g.fillStyle = "#0d1117"; g.fillText(fmtPrice(last.close), plotW + 6, ly);
          publish(chart, shown.length, incomplete, gapSlots);
        }

        // Top of book and a depth chart: cumulative quantity of bids (left) and asks (right) against price.
        function drawBook(chart) {
          const b = chart.book, c = chart.depth, dpr = window.devicePixelRatio || 1;
          const w = Math.max(100, c.clientWidth), h = Math.max(40, c.clientHeight);
          if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
          const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, w, h);
          g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle";
          const q = s => chart.card.querySelector(s);
          if (!b) { g.fillStyle = "#8b949e"; g.fillText("no order book yet", 10, h / 2); c.dataset.levelsDrawn = 0; return; }
          q(".bid").textContent = b.bestBid ? `${fmtPrice(b.bestBid[0])} × ${b.bestBid[1]}` : "–";
          q(".ask").textContent = b.bestAsk ? `${fmtPrice(b.bestAsk[0])} × ${b.bestAsk[1]}` : "–";
          q(".spread").textContent = b.spread ?? "–"; q(".mid").textContent = b.mid ? fmtPrice(b.mid) : "–";
          chart.card.dataset.bestBid = b.bestBid ? b.bestBid[0] : ""; chart.card.dataset.bestAsk = b.bestAsk ? b.bestAsk[0] : "";
          chart.card.dataset.bookSequence = b.sequence ?? "";
          const side = levels => { let sum = 0; return levels.map(([p, s]) => [+p, sum += +s]); };
          const bids = side(b.bids), asks = side(b.asks);
          const all = bids.concat(asks); if (!all.length) { c.dataset.levelsDrawn = 0; return; }
          let lo = Math.min(...all.map(x => x[0])), hi = Math.max(...all.map(x => x[0])); if (hi === lo) { hi += 1; lo -= 1; }
          const vmax = Math.max(bids.length ? bids[bids.length - 1][1] : 0, asks.length ? asks[asks.length - 1][1] : 0) || 1;
          const x = p => (p - lo) / (hi - lo) * (w - 4) + 2, y = v => h - 2 - v / vmax * (h - 6);
          const area = (pts, color) => { if (!pts.length) return; g.beginPath(); g.moveTo(x(pts[0][0]), h - 2);
            for (const [p, v] of pts) { g.lineTo(x(p), y(v)); } g.lineTo(x(pts[pts.length - 1][0]), h - 2); g.closePath();
            g.globalAlpha = 0.35; g.fillStyle = color; g.fill(); g.globalAlpha = 1; g.strokeStyle = color; g.stroke(); };
          area(bids, "#26a69a"); area(asks, "#ef5350");
          c.dataset.levelsDrawn = bids.length + asks.length;
        }
        async function loadBook(chart) {
          try { chart.book = await api(`/api/book?symbol=${encodeURIComponent(chart.symbol)}&depth=20`); } catch (e) { chart.book = null; }
          drawBook(chart);
        }

        function publish(chart, drawn, incomplete, gapSlots) {
          chart.canvas.dataset.candlesDrawn = drawn;
          chart.canvas.dataset.incompleteDrawn = incomplete;
          chart.canvas.dataset.gapSlots = gapSlots;
          const last = chart.candles[chart.candles.length - 1];
          if (last) {
            chart.card.dataset.lastClose = last.close;
            const first = chart.candles[Math.max(0, chart.candles.length - 24)];
            const ch = (last.close - first.open) / first.open * 100;
            chart.px.innerHTML = `${fmtPrice(last.close)} <span class="${ch >= 0 ? "up" : "down"}">${ch >= 0 ? "+" : ""}${ch.toFixed(2)}%</span>`;
          }
          let sum = 0; for (const c of charts.values()) sum += +c.canvas.dataset.candlesDrawn;
          document.body.dataset.candlesDrawn = sum;
        }

        function upsertCandle(chart, k) {
          const list = chart.candles;
          let i = list.length - 1;
          while (i >= 0 && list[i].start > k.start) i--;
          if (i >= 0 && list[i].start === k.start) { if (k.revision >= list[i].revision || k.final) list[i] = k; }
          else list.splice(i + 1, 0, k);
          if (list.length > 500) list.splice(0, list.length - 500);
        }

        async function loadCandles(chart) {   // one chart's failure does not stop the others
          try {
            const r = await api(`/api/candles?symbol=${encodeURIComponent(chart.symbol)}&interval=${interval}&limit=300`);
            if (r.interval !== interval) return;
            chart.candles = r.candles; draw(chart);
          } catch (e) { console.warn(e); chart.candles = []; draw(chart); }
        }

        function renderTrades() {
          const body = document.getElementById("trades");
          body.innerHTML = trades.map(t => `<tr class="${t.fresh ? "new" : ""}"><td>${fmtTime(t.time, true)}</td><td>${esc(t.symbol.split(":").pop())}</td>` +
            `<td class="${t.side === "buy" ? "up" : "down"}">${fmtPrice(t.price)}</td><td>${esc(t.quantity)}</td></tr>`).join("");
          trades.forEach(t => t.fresh = false);
          document.body.dataset.tradesShown = trades.length;
        }
        function addTrade(t, fresh) { t.fresh = fresh; trades.unshift(t); if (trades.length > MAX_TRADES) trades.length = MAX_TRADES; }

        async function loadStats() {
          try {
            const s = await api("/api/stats");
            const n = v => v === null || v === undefined ? "–" : (+v).toFixed(v % 1 ? 1 : 0);
            document.getElementById("health").innerHTML = s.exchanges.map(e =>
              `<tr><td>${e.connected === false ? "⚠ " : ""}${esc(e.exchange)}</td><td>${n(e.tradesPerSecond)}</td><td>${n(e.framesPerSecond)}</td>` +
              `<td>${n(e.lagMilliseconds)}</td><td>${n(e.reconnects)}</td></tr>`).join("") || `<tr><td colspan="5" class="empty">no exchange data yet</td></tr>`;
            document.getElementById("lag").textContent = s.consumerLag.map(l => `${l.topic} lag ${l.messages}`).join(" · ");
          } catch (e) { console.warn(e); }
        }

        function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
        function subscribeAll(op) {
          for (const c of charts.values()) {
            send({ op, channel: "candles", symbol: c.symbol, interval });
            if (op === "subscribe" || op === "unsubscribe") { send({ op, channel: "trades", symbol: c.symbol }); send({ op, channel: "gaps", symbol: c.symbol });
              send({ op, channel: "book", symbol: c.symbol }); }
          }
        }
        function connect() {
          const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
          ws = new WebSocket(url);
          ws.onopen = () => {
            wsBackoff = 500; wsOpen = true; renderStatus(); subscribeAll("subscribe");
            if (wasConnected) { charts.forEach(c => loadCandles(c)); loadGaps(); }   // fill what was missed while away
            wasConnected = true;
          };
          ws.onclose = () => { wsOpen = false; renderStatus(); setTimeout(connect, wsBackoff); wsBackoff = Math.min(wsBackoff * 2, 10000); };
          ws.onmessage = ev => {
            const m = JSON.parse(ev.data);
            if (m.type === "candle" && m.interval === interval) {
              const chart = charts.get(m.symbol); if (!chart) return;
              upsertCandle(chart, m.data); liveUpdates++; document.body.dataset.liveUpdates = liveUpdates; draw(chart);
            } else if (m.type === "trade") {
              addTrade({ ...m.data, symbol: m.symbol }, true); liveUpdates++; document.body.dataset.liveUpdates = liveUpdates; scheduleTrades();
            } else if (m.type === "gap") {
              const chart = charts.get(m.symbol); if (!chart) return;
              applyGap(chart, m.data); gapUpdates++; document.body.dataset.gapUpdates = gapUpdates; renderGapBadge(chart); draw(chart);
            } else if (m.type === "book") {
              const chart = charts.get(m.symbol); if (!chart) return;
              chart.book = m.data; bookUpdates++; document.body.dataset.bookUpdates = bookUpdates; drawBook(chart);
            } else if (m.type === "error") { console.warn("ws:", m.message); }
          };
        }
        let tradesPending = false;
        function scheduleTrades() { if (!tradesPending) { tradesPending = true; requestAnimationFrame(() => { tradesPending = false; renderTrades(); }); } }

        function markIntervalButtons() { for (const b of document.querySelectorAll("#intervals button")) b.classList.toggle("on", b.dataset.i === interval); }
        document.getElementById("intervals").addEventListener("click", async ev => {
          const next = ev.target.dataset?.i; if (!next || next === interval) return;
          for (const c of charts.values()) send({ op: "unsubscribe", channel: "candles", symbol: c.symbol, interval });
          interval = next; markIntervalButtons();
          for (const c of charts.values()) { send({ op: "subscribe", channel: "candles", symbol: c.symbol, interval }); c.candles = []; }
          await Promise.all([...charts.values()].map(loadCandles));
        });

        async function start() {
          markIntervalButtons();
          try {
            const m = await api("/api/markets");
            m.markets.forEach(x => ensureChart(x.symbol));
            const [t] = await Promise.all([api(`/api/trades?limit=${MAX_TRADES}`), ...[...charts.values()].map(loadCandles),
              ...[...charts.values()].map(loadBook), loadStats(), loadHealth()]);
            t.trades.slice().reverse().forEach(x => addTrade({ ...x, symbol: x.exchange + ":" + x.symbol }, false));
            renderTrades();
            await loadGaps();
            renderStatus();
          } catch (e) { if (!authFailed) setStatus("down", e.message); console.error(e); }
          document.body.dataset.ready = "1";
          connect();
          setInterval(loadStats, 2000);
          setInterval(loadHealth, 2000);
          setInterval(async () => {   // markets that appear later get a chart too; gaps are re-read in case a message was missed
            try { const m = await api("/api/markets"); for (const x of m.markets) if (!charts.has(x.symbol) && charts.size < MAX_CHARTS) {
              const c = ensureChart(x.symbol); await loadCandles(c); send({ op: "subscribe", channel: "candles", symbol: c.symbol, interval }); send({ op: "subscribe", channel: "trades", symbol: c.symbol });
              send({ op: "subscribe", channel: "gaps", symbol: c.symbol }); send({ op: "subscribe", channel: "book", symbol: c.symbol }); loadBook(c); }
              await loadGaps(); } catch (e) {}
          }, 10000);
        }
        start();
        </script>
        </body>
        </html>
        """#
}
