//! Untrusted input has limits (issue 14, item 8): files from patchsets are refused by size,
//! depth and alias count before they are parsed, and the refusal is reported on the change.

mod support;

use support::site::{Site, pipeline};

#[test]
fn issue_14_an_oversized_or_deeply_nested_pipeline_file_is_refused_and_reported() {
    let site = Site::new("", "");
    site.reconcile();
    // 2 MiB of pipeline file.
    let huge = format!("{}\n# {}\n", pipeline("true"), "x".repeat(2 << 20));
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000301",
        &[(".pipeline/config.yaml", &huge), ("msg.txt", "ok\n")],
        false,
    );
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(
        reviews[0].contains(".pipeline/config.yaml is 2097")
            && reviews[0].contains("over the limit"),
        "{}",
        reviews[0]
    );
    // 80,000 levels of nesting: refused by the scan, with where.
    let deep = format!("jobs: {}{}\n", "[".repeat(80_000), "]".repeat(80_000));
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000302",
        &[(".pipeline/config.yaml", &deep)],
        false,
    );
    site.reconcile();
    let reviews = site.reviews(2);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(
        reviews[0].contains("nests deeper than the limit of 64 levels"),
        "{}",
        reviews[0]
    );
    // A job named `..` is not a job name.
    let dots = pipeline("true")
        .replace("  unit:", "  \"..\":")
        .replace("[unit]", "[\"..\"]");
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000303",
        &[(".pipeline/config.yaml", &dots)],
        false,
    );
    site.reconcile();
    let reviews = site.reviews(3);
    assert!(
        reviews[0].contains("job names are plain identifiers"),
        "{}",
        reviews[0]
    );
}

/// Issue 14, item 10: `status` says whether Gerrit answers, and a pass that could not read it
/// exits non-zero.
#[test]
fn issue_14_an_unreachable_gerrit_shows_in_status_and_fails_the_pass() {
    let site = Site::new("", "");
    site.reconcile();
    let status = support::ok(
        support::seakeeper()
            .args(["status", "--settings"])
            .arg(&site.settings),
    );
    assert!(
        status.contains(&format!("gerrit: {} reachable", site.g.url)),
        "{status}"
    );
    // Every request fails from now on (more than the client's retries).
    site.g.fail_next(1000);
    let out = support::output(&mut site.reconcile_cmd());
    assert!(!out.status.success(), "{}", support::stdout(&out));
    let status = support::ok(
        support::seakeeper()
            .args(["status", "--settings"])
            .arg(&site.settings),
    );
    assert!(
        status.contains(&format!(
            "gerrit: {} UNREACHABLE: 1 of 1 projects could not be read",
            site.g.url
        )),
        "{status}"
    );
}
