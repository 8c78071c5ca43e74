/// The dashboard page served at `/`: one self-contained HTML document (no external resources).
enum Dashboard {
    static let html = #"""
<!doctype html><html><body>placeholder</body></html>
"""#
}
