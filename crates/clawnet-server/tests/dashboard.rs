//! The embedded dashboard: served by the hub itself, locked down by its
//! Content-Security-Policy, self-contained and within its size budget.
//! (What it does in a browser is tested by `e2e/run.sh` in Chromium.)

mod common;

use common::*;

async fn get(hub: &TestHub, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", hub.base))
        .await
        .expect("request")
}

#[tokio::test]
async fn the_hub_serves_its_dashboard_without_a_credential() {
    let hub = start().await;
    let page = get(&hub, "/").await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-type"]
        .to_str()
        .expect("ascii header")
        .starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().expect("ascii header");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("body");
    assert!(html.contains("/ui/app.js"), "the page loads its script");

    for (file, mime) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let res = get(&hub, &format!("/ui/{file}")).await;
        assert_eq!(res.status(), 200, "{file}");
        let ct = res.headers()["content-type"]
            .to_str()
            .expect("ascii header")
            .to_string();
        assert!(ct.starts_with(mime), "{file}: {ct}");
        assert!(
            !res.bytes().await.expect("body").is_empty(),
            "{file} is empty"
        );
    }
    assert_eq!(get(&hub, "/ui/nope.js").await.status(), 404);
    assert_eq!(get(&hub, "/ui/..%2FCargo.toml").await.status(), 404);
}

#[test]
fn the_dashboard_stays_within_its_budget_and_loads_nothing_from_elsewhere() {
    let total = clawnet_server::dashboard::shipped_bytes();
    assert!(
        total < 300 * 1024,
        "dashboard ships {total} bytes (budget 300 KiB)"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    for entry in std::fs::read_dir(&dir).expect("web/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("text asset");
        for needle in ["http://", "https://", "//cdn", "@import url("] {
            for (i, _) in text.match_indices(needle) {
                // SVG and XHTML name their XML namespace; nothing is fetched.
                let around = &text[i..(i + 40).min(text.len())];
                assert!(
                    around.starts_with("http://www.w3.org/"),
                    "{} refers to {around:?}: every asset must be embedded",
                    path.display()
                );
            }
        }
        if path.extension().is_some_and(|e| e == "html") {
            assert!(
                !text.contains("<script>") && !text.contains("style=\""),
                "inline script or style in {} would be refused by the CSP",
                path.display()
            );
        }
    }
}
