//! `seakeeper doctor --kubernetes`: the conformance check SRE runs after applying
//! `bootstrap/kubernetes` (see `executor::kubernetes::doctor`), one line per check, exit 1 on
//! any failure; and `seakeeper doctor probe`, what its Jobs run inside the cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::executor::kubernetes::KubeSettings;
use crate::executor::kubernetes::doctor::{self, DoctorSettings};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct DoctorArgs {
    #[command(subcommand)]
    command: Option<DoctorCommand>,
    /// Check the Kubernetes cluster the kubeconfig names (`KUBECONFIG`, else
    /// `~/.kube/config`, else the in-cluster account): namespaces, service accounts, RBAC on
    /// Secrets, network policies, and a trivial Job in each jobs namespace.
    #[arg(long)]
    kubernetes: bool,
    /// The namespace of trusted jobs.
    #[arg(long, default_value_t = KubeSettings::default().trusted_namespace)]
    namespace_trusted: String,
    /// The namespace of untrusted jobs.
    #[arg(long, default_value_t = KubeSettings::default().untrusted_namespace)]
    namespace_untrusted: String,
    /// seakeeper's own namespace (its key and secrets), where jobs' accounts must read no
    /// Secret either.
    #[arg(long, default_value = "seakeeper")]
    namespace: String,
    /// The image of the trivial Jobs, by digest (NAME@sha256:...): seakeeper's own, which
    /// runs `seakeeper doctor probe`. A tag is refused.
    #[arg(long)]
    image: Option<String>,
    /// How long each trivial Job may take, in seconds (pulling the image included).
    #[arg(long, default_value_t = 180)]
    job_timeout: u64,
    /// How long any one API call may take, in seconds.
    #[arg(long, default_value_t = 15)]
    call_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum DoctorCommand {
    /// (In the doctor's Job.) Fail if a service-account token is mounted, or if any
    /// `--unreachable` address (and the API server's, from `KUBERNETES_SERVICE_HOST`) answers.
    #[command(hide = true)]
    Probe {
        /// `IP:PORT` that must not answer a TCP connection (repeatable).
        #[arg(long)]
        unreachable: Vec<String>,
        /// How long to wait for each connection, in seconds.
        #[arg(long, default_value_t = 3)]
        connect_timeout: u64,
    },
}

pub(super) fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    if let Some(DoctorCommand::Probe {
        unreachable,
        connect_timeout,
    }) = args.command
    {
        let checks = doctor::probe(&unreachable, Duration::from_secs(connect_timeout));
        for c in &checks {
            println!("{c}");
        }
        return Ok(if checks.iter().all(|c| c.ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !args.kubernetes {
        bail!(
            "nothing to check: say what, e.g. `seakeeper doctor --kubernetes --image NAME@sha256:...`"
        );
    }
    let Some(image) = args.image else {
        bail!(
            "--image NAME@sha256:... is required: the trivial Jobs run seakeeper's own image, by digest"
        );
    };
    let settings = DoctorSettings {
        trusted_namespace: args.namespace_trusted,
        untrusted_namespace: args.namespace_untrusted,
        seakeeper_namespace: args.namespace,
        image,
        job_timeout: Duration::from_secs(args.job_timeout),
        call_timeout: Duration::from_secs(args.call_timeout),
    };
    let passed = doctor::run(&settings, &mut |c| println!("{c}"))?;
    if passed {
        println!("every check passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("some checks FAILED (above)");
        Ok(ExitCode::FAILURE)
    }
}
