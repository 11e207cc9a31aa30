//! `deploy/kubernetes/`: one file per registered service, with everything
//! it runs as (ServiceAccount, ConfigMap, Deployment, Service,
//! PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy; the
//! gateway's also has the Ingress), the namespace, and a kustomization that
//! lists them.
//!
//! Every service keeps its state in PostgreSQL, NATS or Redis, none in its
//! pods, so each one scales horizontally on CPU. Secrets are referenced,
//! never written: each service reads a Secret `bazaar-<service>` whose keys
//! are the variables [`wiring::secrets`] names. NetworkPolicies allow only
//! the call graph of the registry (`calls`), the ingress controller to the
//! gateway, Prometheus's scrapes, and egress to DNS and the engines, found
//! by the label [`ENGINE_LABEL`].

use std::fmt::Write as _;

use super::wiring::{self, DATA_DIR, PRE_STOP_SECS, SecretVar, USER_ID, ports};
use super::yaml::{self, Map, Value, map, seq};
use super::{File, GENERATED};
use crate::registry::{self, SERVICES, ServiceDef};

/// The namespace of the fleet and its engines.
pub const NAMESPACE: &str = "bazaar";
/// The label that marks the engines' pods (set by the values and manifests
/// in `deploy/kubernetes/engines/`), so NetworkPolicies can allow them.
pub const ENGINE_LABEL: &str = "bazaar.example/engine";
/// The label naming a service's pods.
const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The oldest Kubernetes these manifests are for: `preStop.sleep` is on by
/// default from 1.30.
pub const MIN_VERSION: &str = "1.30";
/// Where a service's file secrets are mounted.
pub const SECRETS_DIR: &str = "/var/run/secrets/bazaar";
/// The public host of the Ingress; set yours (see the README).
pub const PUBLIC_HOST: &str = "bazaar.example.com";
/// The namespace of the ingress controller, whose pods may reach the gateway.
pub const INGRESS_NAMESPACE: &str = "ingress-nginx";

/// Hosts of the engines inside the namespace.
mod hosts {
    /// CloudNativePG's read-write service of the cluster `bazaar-pg`.
    pub const POSTGRES: &str = "bazaar-pg-rw";
    /// The NATS Helm chart's client service (release `nats`).
    pub const NATS: &str = "nats";
    /// `engines/redis.yaml`'s service.
    pub const REDIS: &str = "redis";
    /// The OpenTelemetry Collector's service.
    pub const OTEL_COLLECTOR: &str = "otel-collector";
}

/// Values of services' own variables at scale.
pub const OVERRIDES: &[wiring::Override] = &[
    wiring::Override {
        service: registry::FRONT_DOOR,
        var: "BAZAAR_GATEWAY_CORS_ORIGINS",
        value: "https://bazaar.example.com",
    },
    // The ingress controller's pods forward the client's address in
    // X-Forwarded-For; believe it from the pod network only. Set your
    // cluster's pod CIDR.
    wiring::Override {
        service: registry::FRONT_DOOR,
        var: "BAZAAR_GATEWAY_TRUSTED_PROXIES",
        value: "10.0.0.0/8",
    },
];

/// Requests and limits of every service container.
const RESOURCES: [(&str, &str, &str); 2] = [("cpu", "100m", "1"), ("memory", "64Mi", "256Mi")];
/// Replicas the autoscaler keeps: two so a node can drain, at most ten.
const MIN_REPLICAS: u32 = 2;
const MAX_REPLICAS: u32 = 10;
/// Average CPU use (of the request) the autoscaler aims at.
const CPU_TARGET_PERCENT: u32 = 70;

/// Every file of the Kubernetes deployment, paths relative to `deploy/`.
pub fn files() -> Vec<File> {
    let mut files = vec![
        File::new(
            "kubernetes/kustomization.yaml",
            yaml::file(GENERATED, &[kustomization()]),
        ),
        File::new(
            "kubernetes/namespace.yaml",
            yaml::file(GENERATED, &[namespace()]),
        ),
    ];
    for service in SERVICES {
        files.push(File::new(
            format!("kubernetes/{}.yaml", service.name),
            yaml::file(&service_header(service), &documents(service)),
        ));
    }
    files
}

/// Every manifest as one stream (`bazaar deploy kubernetes | kubectl apply -f -`).
pub fn stream() -> String {
    let mut docs = vec![namespace()];
    for service in SERVICES {
        docs.extend(documents(service));
    }
    yaml::file(GENERATED, &docs)
}

fn service_header(service: &ServiceDef) -> String {
    let mut h = format!(
        "{GENERATED}\n\n{name}: kubectl apply -k deploy/kubernetes (after the engines).\n\
         Its secrets, never committed: the Secret {secret} with the keys\n",
        name = service.name,
        secret = secret_name(service),
    );
    for s in wiring::secrets(service) {
        let what = match s.name {
            "BAZAAR_DATABASE_URL" => format!(
                "postgres://{}:PASSWORD@{}:{}/{}",
                wiring::DATABASE_USER,
                hosts::POSTGRES,
                ports::POSTGRES,
                wiring::database_name(service)
            ),
            "BAZAAR_REDIS_URL" => format!("redis://:PASSWORD@{}:{}", hosts::REDIS, ports::REDIS),
            _ => s.help.to_owned(),
        };
        let _ = writeln!(h, "  {}", s.name);
        for line in wrap(&what, 90) {
            let _ = writeln!(h, "      {line}");
        }
    }
    h
}

/// `text` in lines of at most `width` characters, broken between words.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn secret_name(service: &ServiceDef) -> String {
    format!("bazaar-{}", service.name)
}

fn labels(service: &ServiceDef) -> Value {
    map! {
        NAME_LABEL => service.name,
        "app.kubernetes.io/part-of" => "bazaar",
        "app.kubernetes.io/version" => env!("CARGO_PKG_VERSION"),
    }
}

fn selector(service: &ServiceDef) -> Value {
    map! { NAME_LABEL => service.name }
}

fn metadata(service: &ServiceDef) -> Value {
    map! { "name" => service.name, "namespace" => NAMESPACE, "labels" => labels(service) }
}

fn kustomization() -> Value {
    let mut resources = vec![Value::from("namespace.yaml")];
    resources.extend(
        SERVICES
            .iter()
            .map(|s| Value::from(format!("{}.yaml", s.name))),
    );
    map! {
        "apiVersion" => "kustomize.config.k8s.io/v1beta1",
        "kind" => "Kustomization",
        "resources" => resources,
    }
}

fn namespace() -> Value {
    map! {
        "apiVersion" => "v1",
        "kind" => "Namespace",
        "metadata" => map! {
            "name" => NAMESPACE,
            "labels" => map! {
                // Bazaar's pods meet the restricted profile; the engines'
                // charts are held to baseline.
                "pod-security.kubernetes.io/enforce" => "baseline",
                "pod-security.kubernetes.io/warn" => "restricted",
                "pod-security.kubernetes.io/audit" => "restricted",
            },
        },
    }
}

/// The manifests of one service, in apply order.
pub fn documents(service: &ServiceDef) -> Vec<Value> {
    let mut docs = vec![
        service_account(service),
        config_map(service),
        deployment(service),
        k8s_service(service),
        disruption_budget(service),
        autoscaler(service),
        network_policy(service),
    ];
    if service.name == registry::FRONT_DOOR {
        docs.push(ingress(service));
    }
    docs
}

fn service_account(service: &ServiceDef) -> Value {
    map! {
        "apiVersion" => "v1",
        "kind" => "ServiceAccount",
        "metadata" => metadata(service),
        // Services never talk to the Kubernetes API.
        "automountServiceAccountToken" => false,
    }
}

/// The plain settings of `service`, as its ConfigMap holds them.
pub fn config(service: &ServiceDef) -> Vec<(String, String)> {
    let mut data = vec![("BAZAAR_LISTEN".to_owned(), wiring::listen(service))];
    data.extend(
        wiring::settings()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    data.extend(
        service
            .process_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    data.push((
        "BAZAAR_NATS_URL".to_owned(),
        format!("nats://{}:{}", hosts::NATS, ports::NATS),
    ));
    for callee in service.callees() {
        data.push((
            callee.upstream_var(),
            format!("http://{}:{}", callee.name, callee.default_port),
        ));
    }
    data.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
        format!("http://{}:{}", hosts::OTEL_COLLECTOR, ports::OTLP),
    ));
    for o in OVERRIDES.iter().filter(|o| o.service == service.name) {
        data.push((o.var.to_owned(), o.value.to_owned()));
    }
    data
}

fn config_map(service: &ServiceDef) -> Value {
    let mut data = Map::default();
    for (k, v) in config(service) {
        data.push(k, v);
    }
    map! {
        "apiVersion" => "v1",
        "kind" => "ConfigMap",
        "metadata" => metadata(service),
        "data" => data,
    }
}

/// 64-bit FNV-1a: a stable fingerprint of the configuration, so a changed
/// ConfigMap rolls the pods.
fn fingerprint(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn file_secrets(service: &ServiceDef) -> Vec<SecretVar> {
    wiring::secrets(service)
        .into_iter()
        .filter(|s| s.file_var.is_some())
        .collect()
}

/// The container's `env`: its instance name, and its secrets (by reference).
fn env(service: &ServiceDef) -> Vec<Value> {
    let mut env = vec![map! {
        "name" => "BAZAAR_INSTANCE",
        "valueFrom" => map! { "fieldRef" => map! { "fieldPath" => "metadata.name" } },
    }];
    for secret in wiring::secrets(service) {
        env.push(match secret.file_var {
            Some(file_var) => map! {
                "name" => file_var,
                "value" => format!("{SECRETS_DIR}/{}", secret.name),
            },
            None => map! {
                "name" => secret.name,
                "valueFrom" => map! {
                    "secretKeyRef" => map! { "name" => secret_name(service), "key" => secret.name },
                },
            },
        });
    }
    env
}

fn probe(path: &str, period: u32, failures: u32) -> Value {
    map! {
        "httpGet" => map! { "path" => path, "port" => "http" },
        "periodSeconds" => period,
        "timeoutSeconds" => 2,
        "failureThreshold" => failures,
    }
}

fn deployment(service: &ServiceDef) -> Value {
    let config_text: String = config(service)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let mut volume_mounts = vec![map! { "name" => "data", "mountPath" => DATA_DIR }];
    let mut volumes = vec![map! {
        "name" => "data",
        "emptyDir" => map! { "sizeLimit" => "64Mi" },
    }];
    let files = file_secrets(service);
    if !files.is_empty() {
        volume_mounts.push(map! {
            "name" => "secrets",
            "mountPath" => SECRETS_DIR,
            "readOnly" => true,
        });
        let items: Vec<Value> = files
            .iter()
            .map(|s| map! { "key" => s.name, "path" => s.name })
            .collect();
        volumes.push(map! {
            "name" => "secrets",
            "secret" => map! {
                "secretName" => secret_name(service),
                "items" => items,
                // Readable by the pod's group (fsGroup) only.
                "defaultMode" => 0o440,
            },
        });
    }
    let mut requests = Map::default();
    let mut limits = Map::default();
    for (resource, request, limit) in RESOURCES {
        requests.push(resource, request);
        limits.push(resource, limit);
    }
    let container = map! {
        "name" => service.name,
        "image" => wiring::IMAGE,
        "imagePullPolicy" => "IfNotPresent",
        "args" => seq!["serve", service.name],
        "ports" => seq![map! {
            "name" => "http",
            "containerPort" => service.default_port,
            "protocol" => "TCP",
        }],
        "envFrom" => seq![map! { "configMapRef" => map! { "name" => service.name } }],
        "env" => env(service),
        "startupProbe" => probe("/healthz", 2, 30),
        "livenessProbe" => probe("/healthz", 10, 3),
        "readinessProbe" => probe("/readyz", 5, 2),
        "lifecycle" => map! {
            // Let endpoints and the ingress forget this pod before it stops
            // accepting; then SIGTERM starts the platform's drain.
            "preStop" => map! { "sleep" => map! { "seconds" => PRE_STOP_SECS } },
        },
        "resources" => map! { "requests" => requests, "limits" => limits },
        "securityContext" => map! {
            "runAsNonRoot" => true,
            "runAsUser" => USER_ID,
            "runAsGroup" => USER_ID,
            "allowPrivilegeEscalation" => false,
            "readOnlyRootFilesystem" => true,
            "capabilities" => map! { "drop" => seq!["ALL"] },
            "seccompProfile" => map! { "type" => "RuntimeDefault" },
        },
        "volumeMounts" => volume_mounts,
    };
    map! {
        "apiVersion" => "apps/v1",
        "kind" => "Deployment",
        "metadata" => metadata(service),
        "spec" => map! {
            // No `replicas`: the HorizontalPodAutoscaler owns the count.
            "revisionHistoryLimit" => 5,
            "selector" => map! { "matchLabels" => selector(service) },
            "strategy" => map! {
                "type" => "RollingUpdate",
                "rollingUpdate" => map! { "maxUnavailable" => 0, "maxSurge" => 1 },
            },
            "template" => map! {
                "metadata" => map! {
                    "labels" => labels(service),
                    "annotations" => map! {
                        "bazaar.example/config" => fingerprint(&config_text),
                        "prometheus.io/scrape" => "true",
                        "prometheus.io/port" => service.default_port.to_string(),
                        "prometheus.io/path" => "/metrics",
                    },
                },
                "spec" => map! {
                    "serviceAccountName" => service.name,
                    "automountServiceAccountToken" => false,
                    "terminationGracePeriodSeconds" => wiring::termination_grace_secs(),
                    "securityContext" => map! {
                        "runAsNonRoot" => true,
                        "runAsUser" => USER_ID,
                        "runAsGroup" => USER_ID,
                        "fsGroup" => USER_ID,
                        "seccompProfile" => map! { "type" => "RuntimeDefault" },
                    },
                    "topologySpreadConstraints" => seq![map! {
                        "maxSkew" => 1,
                        "topologyKey" => "kubernetes.io/hostname",
                        "whenUnsatisfiable" => "ScheduleAnyway",
                        "labelSelector" => map! { "matchLabels" => selector(service) },
                    }],
                    "containers" => seq![container],
                    "volumes" => volumes,
                },
            },
        },
    }
}

fn k8s_service(service: &ServiceDef) -> Value {
    map! {
        "apiVersion" => "v1",
        "kind" => "Service",
        "metadata" => metadata(service),
        "spec" => map! {
            "type" => "ClusterIP",
            "selector" => selector(service),
            "ports" => seq![map! {
                "name" => "http",
                "port" => service.default_port,
                "targetPort" => "http",
                "protocol" => "TCP",
            }],
        },
    }
}

fn disruption_budget(service: &ServiceDef) -> Value {
    map! {
        "apiVersion" => "policy/v1",
        "kind" => "PodDisruptionBudget",
        "metadata" => metadata(service),
        "spec" => map! {
            "maxUnavailable" => 1,
            "selector" => map! { "matchLabels" => selector(service) },
        },
    }
}

fn autoscaler(service: &ServiceDef) -> Value {
    map! {
        "apiVersion" => "autoscaling/v2",
        "kind" => "HorizontalPodAutoscaler",
        "metadata" => metadata(service),
        "spec" => map! {
            "scaleTargetRef" => map! {
                "apiVersion" => "apps/v1",
                "kind" => "Deployment",
                "name" => service.name,
            },
            "minReplicas" => MIN_REPLICAS,
            "maxReplicas" => MAX_REPLICAS,
            "metrics" => seq![map! {
                "type" => "Resource",
                "resource" => map! {
                    "name" => "cpu",
                    "target" => map! {
                        "type" => "Utilization",
                        "averageUtilization" => CPU_TARGET_PERCENT,
                    },
                },
            }],
        },
    }
}

fn tcp(port: u16) -> Value {
    map! { "protocol" => "TCP", "port" => port }
}

fn pods(service: &ServiceDef) -> Value {
    map! { "podSelector" => map! { "matchLabels" => selector(service) } }
}

fn engine(name: &str) -> Value {
    map! { "podSelector" => map! { "matchLabels" => map! { ENGINE_LABEL => name } } }
}

fn network_policy(service: &ServiceDef) -> Value {
    let port = service.default_port;
    let callers: Vec<Value> = wiring::callers(service).into_iter().map(pods).collect();
    let mut ingress = vec![
        map! { "from" => callers, "ports" => seq![tcp(port)] },
        // Prometheus, wherever it runs, scrapes /metrics.
        map! {
            "from" => seq![map! {
                "namespaceSelector" => map! {},
                "podSelector" => map! {
                    "matchLabels" => map! { NAME_LABEL => "prometheus" },
                },
            }],
            "ports" => seq![tcp(port)],
        },
    ];
    if service.name == registry::FRONT_DOOR {
        ingress.push(map! {
            "from" => seq![map! {
                "namespaceSelector" => map! {
                    "matchLabels" => map! { "kubernetes.io/metadata.name" => INGRESS_NAMESPACE },
                },
            }],
            "ports" => seq![tcp(port)],
        });
    }
    let mut egress: Vec<Value> = service
        .callees()
        .into_iter()
        .map(
            |callee| map! { "to" => seq![pods(callee)], "ports" => seq![tcp(callee.default_port)] },
        )
        .collect();
    egress.push(map! {
        "to" => seq![map! {
            "namespaceSelector" => map! {
                "matchLabels" => map! { "kubernetes.io/metadata.name" => "kube-system" },
            },
            "podSelector" => map! { "matchLabels" => map! { "k8s-app" => "kube-dns" } },
        }],
        "ports" => seq![
            map! { "protocol" => "UDP", "port" => 53 },
            map! { "protocol" => "TCP", "port" => 53 },
        ],
    });
    for (name, port) in [
        ("postgres", ports::POSTGRES),
        ("nats", ports::NATS),
        ("redis", ports::REDIS),
    ] {
        egress.push(map! { "to" => seq![engine(name)], "ports" => seq![tcp(port)] });
    }
    // The collector may run in its own namespace.
    egress.push(map! {
        "to" => seq![map! {
            "namespaceSelector" => map! {},
            "podSelector" => map! { "matchLabels" => map! { ENGINE_LABEL => "otel-collector" } },
        }],
        "ports" => seq![tcp(ports::OTLP)],
    });
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "NetworkPolicy",
        "metadata" => metadata(service),
        "spec" => map! {
            "podSelector" => map! { "matchLabels" => selector(service) },
            "policyTypes" => seq!["Ingress", "Egress"],
            "ingress" => ingress,
            "egress" => egress,
        },
    }
}

fn ingress(service: &ServiceDef) -> Value {
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "Ingress",
        "metadata" => metadata(service),
        "spec" => map! {
            "ingressClassName" => "nginx",
            "tls" => seq![map! { "hosts" => seq![PUBLIC_HOST], "secretName" => "bazaar-tls" }],
            "rules" => seq![map! {
                "host" => PUBLIC_HOST,
                "http" => map! {
                    "paths" => seq![map! {
                        "path" => "/",
                        "pathType" => "Prefix",
                        "backend" => map! {
                            "service" => map! {
                                "name" => service.name,
                                "port" => map! { "name" => "http" },
                            },
                        },
                    }],
                },
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_help_is_wrapped_between_words() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
        assert_eq!(wrap("toolongword x", 5), ["toolongword", "x"]);
    }

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("a"), "af63dc4c8601ec8c");
    }
}
