//! The shop's pages.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::{Markup, html};

use crate::App;
use crate::layout::{self, Chrome};
use crate::session::Session;

/// Every page of the shop.
pub fn routes() -> Router<App> {
    Router::new().route("/", get(home))
}

async fn home(State(_app): State<App>, session: Session) -> Markup {
    layout::page(
        &session,
        &Chrome::default(),
        "Home",
        html! { h1 { "Bazaar" } },
    )
}
