//! Accounts: registering (then signed in at once), signing in (and back to
//! where the user was going, a local path only), signing out. A refused
//! form comes back with its messages and the status identity gave, and
//! never with the password in it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::form::{Errors, Field, NoFields};
use super::safe_next;
use super::wire::Me;
use crate::App;
use crate::backend::Failure;
use crate::error::PageError;
use crate::layout::{self, Chrome, csrf_field};
use crate::session::{self, CsrfForm, Session, Tokens};

/// `?next=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The registration form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    email: String,
    name: String,
    password: String,
    role: String,
}

#[derive(Serialize)]
struct Register<'a> {
    email: &'a str,
    name: &'a str,
    password: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct Credentials<'a> {
    email: &'a str,
    password: &'a str,
}

const REGISTER_LABELS: &[(&str, &str)] = &[
    ("email", "E-mail"),
    ("name", "Name"),
    ("password", "Password"),
    ("role", "Account type"),
];

/// `GET /register`.
pub async fn register_form(session: Session) -> Markup {
    let form = RegisterForm {
        role: "customer".to_owned(),
        ..RegisterForm::default()
    };
    register_page(&session, &form, &Errors::new())
}

/// `POST /register`: creates the account and signs it in.
pub async fn register(
    State(app): State<App>,
    session: Session,
    CsrfForm(form): CsrfForm<RegisterForm>,
) -> Result<Response, PageError> {
    let role = if form.role == "seller" {
        "seller"
    } else {
        "customer"
    };
    let email = form.email.trim();
    let name = form.name.trim();
    let call = app
        .backend
        .call("identity", Method::POST, "/api/v1/auth/register")
        .json(&Register {
            email,
            name,
            password: &form.password,
            role,
        });
    if let Err(failure) = app.backend.empty(call).await {
        let (status, errors) = match failure.status() {
            Some(StatusCode::CONFLICT) => {
                let mut errors = Errors::new();
                errors.add(
                    "email",
                    "An account with this e-mail already exists. Log in instead?",
                );
                (StatusCode::CONFLICT, errors)
            }
            Some(StatusCode::UNPROCESSABLE_ENTITY) => {
                let mut errors = Errors::new();
                errors.add_failure(
                    &failure,
                    &[
                        ("email", "email"),
                        ("name", "name"),
                        ("password", "password"),
                        ("role", "role"),
                    ],
                );
                (StatusCode::UNPROCESSABLE_ENTITY, errors)
            }
            _ => return Err(failure.into()),
        };
        let form = RegisterForm {
            password: String::new(),
            ..form
        };
        return Ok((status, register_page(&session, &form, &errors)).into_response());
    }
    let tokens = sign_in_call(&app, email, &form.password).await?;
    let jar = session::sign_in(&app, CookieJar::new(), &tokens, name);
    let to = if role == "seller" { "/sell" } else { "/" };
    Ok((jar, Redirect::to(to)).into_response())
}

fn register_page(session: &Session, form: &RegisterForm, errors: &Errors) -> Markup {
    let roles = [
        ("customer", "I want to shop"),
        ("seller", "I want to sell (and shop)"),
    ];
    let role_error = errors.get("role");
    let body = html! {
        div.narrow {
            h1 { "Create an account" }
            form.account action="/register" method="post" novalidate {
                (errors.summary(REGISTER_LABELS))
                (csrf_field(session))
                (Field::text("email", "E-mail", &form.email).kind("email").autocomplete("email").render(errors))
                (Field::text("name", "Name", &form.name).autocomplete("name").hint("Shown in the header and on your orders.").render(errors))
                (Field::text("password", "Password", "").kind("password").autocomplete("new-password").hint("At least 8 characters.").render(errors))
                fieldset.choice aria-describedby=[role_error.map(|_| "role-error")] {
                    legend { "Account type" }
                    @for (value, text) in roles {
                        @let id = format!("role-{value}");
                        div.radio {
                            input type="radio" id=(id) name="role" value=(value) checked[form.role == value];
                            label for=(id) { (text) }
                        }
                    }
                    @if let Some(message) = role_error {
                        p.field-error #role-error role="alert" { (message) }
                    }
                }
                button.primary type="submit" { "Create account" }
            }
            p { "Already have an account? " a href="/login" { "Log in" } }
        }
    };
    layout::page(session, &Chrome::default(), "Create an account", body)
}

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
    next: String,
}

/// `GET /login?next=`.
pub async fn login_form(
    session: Session,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Markup {
    let next = query.ok().and_then(|Query(q)| q.next);
    let form = LoginForm {
        next: safe_next(next.as_deref()),
        ..LoginForm::default()
    };
    login_page(&session, &form, &Errors::new())
}

/// `POST /login`.
pub async fn login(
    State(app): State<App>,
    session: Session,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(Some(&form.next));
    let email = form.email.trim();
    let tokens = match sign_in_call(&app, email, &form.password).await {
        Ok(tokens) => tokens,
        Err(PageError::Backend(failure)) => {
            let status = match failure.status() {
                Some(s @ (StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY)) => s,
                _ => return Err(PageError::Backend(failure)),
            };
            let mut errors = Errors::new();
            if status == StatusCode::UNAUTHORIZED {
                errors.general("The e-mail or the password is wrong.");
            } else {
                errors.add_failure(&failure, &[("email", "email"), ("password", "password")]);
            }
            let form = LoginForm {
                email: email.to_owned(),
                password: String::new(),
                next,
            };
            return Ok((status, login_page(&session, &form, &errors)).into_response());
        }
        Err(other) => return Err(other),
    };
    let name = app
        .backend
        .json::<Me>(
            app.backend
                .get("identity", "/api/v1/users/me")
                .token(Some(&tokens.access_token)),
        )
        .await
        .map_or_else(|_| email.to_owned(), |me| me.name);
    let jar = session::sign_in(&app, CookieJar::new(), &tokens, &name);
    Ok((jar, Redirect::to(&next)).into_response())
}

fn login_page(session: &Session, form: &LoginForm, errors: &Errors) -> Markup {
    let body = html! {
        div.narrow {
            h1 { "Log in" }
            form.account action="/login" method="post" novalidate {
                (errors.summary(&[("email", "E-mail"), ("password", "Password")]))
                (csrf_field(session))
                input type="hidden" name="next" value=(form.next);
                (Field::text("email", "E-mail", &form.email).kind("email").autocomplete("username").render(errors))
                (Field::text("password", "Password", "").kind("password").autocomplete("current-password").render(errors))
                button.primary type="submit" { "Log in" }
            }
            p { "New here? " a href="/register" { "Create an account" } }
        }
    };
    layout::page(session, &Chrome::default(), "Log in", body)
}

/// `POST /logout`.
/// The sign-in ends at identity too (its refresh tokens stop working), so
/// a copied cookie is worth nothing after it; the cookies go either way.
pub async fn logout(
    State(app): State<App>,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Response {
    if let Some(refresh) = jar.get(session::REFRESH_COOKIE) {
        let call = app
            .backend
            .call("identity", Method::POST, "/api/v1/auth/logout")
            .json(&serde_json::json!({ "refresh_token": refresh.value() }));
        if let Err(error) = app.backend.empty(call).await {
            tracing::warn!(%error, "cannot end the sign-in at identity; its cookies are cleared anyway");
        }
    }
    let jar = session::sign_out(&app, CookieJar::new());
    (jar, Redirect::to("/")).into_response()
}

async fn sign_in_call(app: &App, email: &str, password: &str) -> Result<Tokens, PageError> {
    let call = app
        .backend
        .call("identity", Method::POST, "/api/v1/auth/login")
        .json(&Credentials { email, password });
    app.backend
        .json::<Tokens>(call)
        .await
        .map_err(|f: Failure| PageError::from(f))
}
