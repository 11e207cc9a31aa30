//! `deploy/compose.yaml` and its configuration files: every registered
//! service (catalog twice) on one PostgreSQL server, NATS JetStream and
//! Redis, with traces through an OpenTelemetry Collector into Jaeger and
//! metrics in Prometheus and Grafana.
//!
//! PostgreSQL is one server with one role (`bazaar`); each service creates
//! its own database `bazaar_<service>` on first start, as the platform does
//! with any missing database, so no init script is needed. Secrets come from
//! `deploy/.env` (see the generated `.env.example`) through Compose's
//! `${VAR:?}` interpolation, which refuses to start without them.

use super::wiring::{self, DATA_DIR, USER_ID, images, ports};
use super::yaml::{self, Map, Value, map, seq};
use super::{File, GENERATED};
use crate::registry::{self, SERVICES, ServiceDef};

/// Services run as several containers here: (name, count). Their callers
/// get every instance's URL in `BAZAAR_UPSTREAM_<SERVICE>` and balance
/// over them (the platform's client-side balancing).
pub const REPLICAS: &[(&str, usize)] = &[("catalog", 2)];

/// Values of services' own variables in this deployment (none needed: the
/// gateway's defaults fit a gateway published on localhost:8080).
pub const OVERRIDES: &[wiring::Override] = &[];

/// Where the engines' secrets come from: `deploy/.env`.
const POSTGRES_PASSWORD: &str = "POSTGRES_PASSWORD";
const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
const GRAFANA_PASSWORD: &str = "GRAFANA_ADMIN_PASSWORD";

/// The engines' Compose services, which no Bazaar service may be named.
pub const ENGINES: &[&str] = &[
    "postgres",
    "nats",
    "redis",
    "otel-collector",
    "jaeger",
    "prometheus",
    "grafana",
];

/// Every file of the Compose deployment, paths relative to `deploy/`.
pub fn files() -> Vec<File> {
    let mut files = vec![
        File::new("compose.yaml", yaml::file(&header(), &[compose()])),
        File::new(".env.example", env_example()),
        File::new(
            "compose/otel-collector.yaml",
            yaml::file(GENERATED, &[otel_collector()]),
        ),
        File::new(
            "compose/prometheus.yaml",
            yaml::file(GENERATED, &[prometheus()]),
        ),
        File::new(
            "compose/grafana/provisioning/datasources/bazaar.yaml",
            yaml::file(GENERATED, &[datasources()]),
        ),
        File::new(
            "compose/grafana/provisioning/dashboards/bazaar.yaml",
            yaml::file(GENERATED, &[dashboard_provider()]),
        ),
    ];
    for service in SERVICES {
        files.push(File::new(
            format!("compose/grafana/dashboards/{}.json", service.name),
            yaml::json(&super::grafana::dashboard(service)),
        ));
    }
    files
}

fn header() -> String {
    format!(
        "{GENERATED}\n\n\
         Bazaar on one Docker host: every service of the registry, PostgreSQL,\n\
         NATS JetStream, Redis, OpenTelemetry Collector, Jaeger, Prometheus, Grafana.\n\
         Secrets: copy deploy/.env.example to deploy/.env and fill it in, then\n\
         docker compose -f deploy/compose.yaml up --build\n\
         Gateway http://localhost:8080, Grafana http://localhost:3000,\n\
         Jaeger http://localhost:16686, Prometheus http://localhost:9090."
    )
}

/// How many containers run `service`.
pub fn replicas(service: &ServiceDef) -> usize {
    REPLICAS
        .iter()
        .find(|(name, _)| *name == service.name)
        .map_or(1, |(_, n)| *n)
}

/// The containers of `service`: (Compose service name, `BAZAAR_INSTANCE`).
/// One container is named after the service; several get `-<i>`.
pub fn instances(service: &ServiceDef) -> Vec<(String, String)> {
    let n = replicas(service);
    (0..n)
        .map(|i| {
            let instance = format!("{}-{i}", service.name);
            let host = if n == 1 {
                service.name.to_owned()
            } else {
                instance.clone()
            };
            (host, instance)
        })
        .collect()
}

/// Compose's interpolation of a variable from `deploy/.env` that must be set.
fn required(var: &str) -> String {
    format!("${{{var}:?see .env.example}}")
}

/// The environment of one container of `service`, in writing order.
pub fn environment(service: &ServiceDef, instance: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("BAZAAR_LISTEN".to_owned(), wiring::listen(service)),
        ("BAZAAR_INSTANCE".to_owned(), instance.to_owned()),
    ];
    env.extend(
        wiring::settings()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    env.extend(
        service
            .process_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env.push((
        "BAZAAR_NATS_URL".to_owned(),
        format!("nats://nats:{}", ports::NATS),
    ));
    for callee in service.callees() {
        let urls: Vec<String> = instances(callee)
            .into_iter()
            .map(|(host, _)| format!("http://{host}:{}", callee.default_port))
            .collect();
        env.push((callee.upstream_var(), urls.join(",")));
    }
    env.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
        format!("http://otel-collector:{}", ports::OTLP),
    ));
    for secret in wiring::secrets(service) {
        let value = match secret.name {
            "BAZAAR_DATABASE_URL" => format!(
                "postgres://{}:{}@postgres:{}/{}",
                wiring::DATABASE_USER,
                required(POSTGRES_PASSWORD),
                ports::POSTGRES,
                wiring::database_name(service)
            ),
            "BAZAAR_REDIS_URL" => {
                format!(
                    "redis://:{}@redis:{}",
                    required(REDIS_PASSWORD),
                    ports::REDIS
                )
            }
            name => required(name),
        };
        env.push((secret.name.to_owned(), value));
    }
    for o in OVERRIDES.iter().filter(|o| o.service == service.name) {
        env.push((o.var.to_owned(), o.value.to_owned()));
    }
    env
}

fn healthy() -> Value {
    map! { "condition" => "service_healthy" }
}

/// The Compose file.
pub fn compose() -> Value {
    let mut services = Map::default();
    services.push(
        "postgres",
        map! {
            "image" => images::POSTGRES,
            "environment" => map! {
                "POSTGRES_USER" => wiring::DATABASE_USER,
                "POSTGRES_PASSWORD" => required(POSTGRES_PASSWORD),
            },
            "volumes" => seq!["postgres:/var/lib/postgresql/data"],
            "healthcheck" => map! {
                "test" => seq!["CMD", "pg_isready", "-U", wiring::DATABASE_USER, "-d", "postgres"],
                "interval" => "5s",
                "timeout" => "3s",
                "retries" => 20,
            },
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "nats",
        map! {
            "image" => images::NATS,
            "command" => seq!["-js", "-sd", "/data", "-m", ports::NATS_MONITOR.to_string()],
            "volumes" => seq!["nats:/data"],
            "healthcheck" => map! {
                "test" => seq![
                    "CMD", "wget", "-q", "-O", "/dev/null",
                    format!("http://127.0.0.1:{}/healthz?js-enabled-only=true", ports::NATS_MONITOR),
                ],
                "interval" => "5s",
                "timeout" => "3s",
                "retries" => 20,
            },
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "redis",
        map! {
            "image" => images::REDIS,
            "command" => seq![
                "redis-server", "--requirepass", required(REDIS_PASSWORD), "--appendonly", "yes",
            ],
            // redis-cli reads the password from here, for the health check.
            "environment" => map! { "REDISCLI_AUTH" => required(REDIS_PASSWORD) },
            "volumes" => seq!["redis:/data"],
            "healthcheck" => map! {
                "test" => seq!["CMD", "redis-cli", "ping"],
                "interval" => "5s",
                "timeout" => "3s",
                "retries" => 20,
            },
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "otel-collector",
        map! {
            "image" => images::OTEL_COLLECTOR,
            "command" => seq!["--config=/etc/otelcol/config.yaml"],
            "volumes" => seq!["./compose/otel-collector.yaml:/etc/otelcol/config.yaml:ro"],
            "depends_on" => seq!["jaeger"],
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "jaeger",
        map! {
            "image" => images::JAEGER,
            "ports" => seq![format!("127.0.0.1:{0}:{0}", ports::JAEGER_UI)],
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "prometheus",
        map! {
            "image" => images::PROMETHEUS,
            "command" => seq!["--config.file=/etc/prometheus/prometheus.yaml"],
            "volumes" => seq!["./compose/prometheus.yaml:/etc/prometheus/prometheus.yaml:ro"],
            "ports" => seq![format!("127.0.0.1:{0}:{0}", ports::PROMETHEUS)],
            "restart" => "unless-stopped",
        },
    );
    services.push(
        "grafana",
        map! {
            "image" => images::GRAFANA,
            "environment" => map! {
                "GF_SECURITY_ADMIN_PASSWORD" => required(GRAFANA_PASSWORD),
                "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH" =>
                    format!("/etc/grafana/dashboards/{}.json", registry::FRONT_DOOR),
            },
            "volumes" => seq![
                "./compose/grafana/provisioning:/etc/grafana/provisioning:ro",
                "./compose/grafana/dashboards:/etc/grafana/dashboards:ro",
            ],
            "ports" => seq![format!("127.0.0.1:{0}:{0}", ports::GRAFANA)],
            "depends_on" => seq!["prometheus", "jaeger"],
            "restart" => "unless-stopped",
        },
    );
    for service in SERVICES {
        for (host, instance) in instances(service) {
            services.push(host, container(service, &instance));
        }
    }
    map! {
        "name" => "bazaar",
        "services" => services,
        "volumes" => map! { "postgres" => map! {}, "nats" => map! {}, "redis" => map! {} },
    }
}

fn container(service: &ServiceDef, instance: &str) -> Value {
    let mut env = Map::default();
    for (k, v) in environment(service, instance) {
        env.push(k, v);
    }
    let mut depends_on = Map::default();
    for engine in ["postgres", "nats", "redis"] {
        depends_on.push(engine, healthy());
    }
    depends_on.push("otel-collector", map! { "condition" => "service_started" });
    // Callees need not be up first (calls are retried and broken by the
    // platform), but starting them first spares the first requests.
    for callee in service.callees() {
        if callee.name == service.name {
            continue;
        }
        for (host, _) in instances(callee) {
            depends_on.push(host, map! { "condition" => "service_started" });
        }
    }
    let mut c = Map::default();
    c.push("image", wiring::IMAGE);
    c.push(
        "build",
        map! { "context" => "..", "dockerfile" => "Dockerfile" },
    );
    c.push("command", seq!["serve", service.name]);
    c.push("environment", env);
    c.push("depends_on", depends_on);
    if service.name == registry::FRONT_DOOR {
        c.push("ports", seq![format!("{0}:{0}", service.default_port)]);
    }
    c.push(
        "healthcheck",
        map! {
            "test" => seq![
                "CMD", wiring::BINARY, "probe",
                format!("http://127.0.0.1:{}/healthz", service.default_port),
            ],
            "interval" => "10s",
            "timeout" => "3s",
            "start_period" => "30s",
            "retries" => 3,
        },
    );
    c.push("restart", "unless-stopped");
    c.push("stop_grace_period", format!("{}s", wiring::stop_secs()));
    c.push("read_only", true);
    c.push(
        "tmpfs",
        seq![format!("{DATA_DIR}:uid={USER_ID},gid={USER_ID},mode=0700")],
    );
    c.push("cap_drop", seq!["ALL"]);
    c.push("security_opt", seq!["no-new-privileges:true"]);
    Value::Map(c)
}

fn env_example() -> String {
    let mut out: String = GENERATED.lines().map(|l| format!("# {l}\n")).collect();
    out += &format!(
        "#\n\
         # Secrets of deploy/compose.yaml. Copy this file to deploy/.env (never\n\
         # commit that one) and give every variable a value. Passwords go into\n\
         # URLs: use URL-safe characters, e.g. `openssl rand -hex 24`.\n\
         \n\
         # PostgreSQL's superuser `{user}`; every service creates its own database.\n\
         {POSTGRES_PASSWORD}=\n\
         # Redis's password (requirepass).\n\
         {REDIS_PASSWORD}=\n\
         # Grafana's `admin` user.\n\
         {GRAFANA_PASSWORD}=\n",
        user = wiring::DATABASE_USER,
    );
    for service in SERVICES {
        for secret in wiring::secrets(service)
            .into_iter()
            .filter(|s| s.name != "BAZAAR_DATABASE_URL" && s.name != "BAZAAR_REDIS_URL")
        {
            out.push('\n');
            for line in super::kubernetes::wrap(&format!("{}: {}", service.name, secret.help), 76) {
                out.push_str(&format!("# {line}\n"));
            }
            out.push_str(&format!("{}=\n", secret.name));
        }
    }
    out
}

fn otel_collector() -> Value {
    map! {
        "receivers" => map! {
            "otlp" => map! {
                "protocols" => map! {
                    "grpc" => map! { "endpoint" => format!("0.0.0.0:{}", ports::OTLP) },
                },
            },
        },
        "processors" => map! { "batch" => map! {} },
        "exporters" => map! {
            "otlp/jaeger" => map! {
                "endpoint" => format!("jaeger:{}", ports::OTLP),
                "tls" => map! { "insecure" => true },
            },
        },
        "service" => map! {
            "pipelines" => map! {
                "traces" => map! {
                    "receivers" => seq!["otlp"],
                    "processors" => seq!["batch"],
                    "exporters" => seq!["otlp/jaeger"],
                },
            },
        },
    }
}

fn prometheus() -> Value {
    let targets: Vec<Value> = SERVICES
        .iter()
        .flat_map(|s| {
            instances(s)
                .into_iter()
                .map(move |(host, _)| Value::from(format!("{host}:{}", s.default_port)))
        })
        .collect();
    map! {
        "global" => map! { "scrape_interval" => "15s", "evaluation_interval" => "15s" },
        "scrape_configs" => seq![map! {
            "job_name" => "bazaar",
            // Every service labels its metrics with `service` and
            // `instance` (BAZAAR_INSTANCE): keep those, not the address.
            "honor_labels" => true,
            "metrics_path" => "/metrics",
            "static_configs" => seq![map! { "targets" => targets }],
        }],
    }
}

fn datasources() -> Value {
    map! {
        "apiVersion" => 1,
        "datasources" => seq![
            map! {
                "name" => "Prometheus",
                "uid" => super::grafana::PROMETHEUS_UID,
                "type" => "prometheus",
                "access" => "proxy",
                "url" => format!("http://prometheus:{}", ports::PROMETHEUS),
                "isDefault" => true,
            },
            map! {
                "name" => "Jaeger",
                "uid" => "jaeger",
                "type" => "jaeger",
                "access" => "proxy",
                "url" => format!("http://jaeger:{}", ports::JAEGER_UI),
            },
        ],
    }
}

fn dashboard_provider() -> Value {
    map! {
        "apiVersion" => 1,
        "providers" => seq![map! {
            "name" => "bazaar",
            "folder" => "Bazaar",
            "type" => "file",
            "disableDeletion" => true,
            "options" => map! { "path" => "/etc/grafana/dashboards" },
        }],
    }
}
