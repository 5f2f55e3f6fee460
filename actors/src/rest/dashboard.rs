//! The web dashboard at `/`: one HTML page, its script and its style sheet, compiled into the
//! binary (`include_str!`) and served by the REST server. No CDN, no build step: the page is
//! plain HTML, JavaScript, CSS and inline SVG, and talks to the REST API under `/v1`.

use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// Registers `/`, `/index.html`, `/app.js` and `/style.css`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let index = || web::get().to(|| async { asset("text/html; charset=utf-8", INDEX) });
    cfg.route("/", index())
        .route("/index.html", index())
        .route(
            "/app.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/style.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", STYLE) }),
        );
}
