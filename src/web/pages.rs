//! The HTML pages, as compile-checked `maud` templates: everything interpolated is escaped,
//! only log lines already rendered by [`super::ansi`] are inserted as HTML. Each page links the
//! signed ledger commits behind what it shows.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::views::{BuildView, ChangeView, CommitView};
use crate::daemon::Status;
use crate::ledger::Trace;

const CSS: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{background:#12324a;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1em;max-width:1400px}
h1{font-size:1.3em;margin:.2em 0 .6em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:.8em}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef2f5} code,.mono{font-family:ui-monospace,monospace;font-size:.92em}
.st{display:inline-block;padding:0 .45em;border-radius:3px;color:#fff;background:#777;font-size:.85em}
.st-success,.st-landed,.st-passed{background:#2b7a2b} .st-failure,.st-failed,.st-timed_out,.st-error,.st-refused,.st-failing{background:#b3261e}
.st-running,.st-testing,.st-merging,.st-landing,.st-copying{background:#1f5fa8} .st-held{background:#b06a00} .st-cancelled{background:#555}
.alert{background:#fde7e7;border:1px solid #e3a2a2;padding:.5em 1em;margin:.5em 0}
.ok{background:#e8f5e8;border:1px solid #9cc89c;padding:.5em 1em;margin:.5em 0}
.muted{color:#666} .queue{background:#fff;border:1px solid #ccd;padding:.5em;margin-bottom:.8em}
pre.log{background:#111;color:#ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font:12.5px/1.4 ui-monospace,monospace}
pre.log div{min-height:1.2em}
.b{font-weight:700}.d{opacity:.7}.i{font-style:italic}.u{text-decoration:underline}
.fg0{color:#555}.fg1{color:#e05252}.fg2{color:#5cb85c}.fg3{color:#d9b13a}.fg4{color:#5a8fe0}.fg5{color:#c069c0}.fg6{color:#3bb3b3}.fg7{color:#ddd}
.fg8{color:#888}.fg9{color:#ff7070}.fg10{color:#7fe07f}.fg11{color:#ffe066}.fg12{color:#80b0ff}.fg13{color:#ff8cff}.fg14{color:#70e0e0}.fg15{color:#fff}
.bg0{background:#000}.bg1{background:#8b1d1d}.bg2{background:#1d6b1d}.bg3{background:#7a6410}.bg4{background:#1d3f8b}.bg5{background:#6b1d6b}.bg6{background:#1d6b6b}.bg7{background:#aaa}
.bg8{background:#444}.bg9{background:#c33}.bg10{background:#3a3}.bg11{background:#aa3}.bg12{background:#33c}.bg13{background:#a3a}.bg14{background:#3aa}.bg15{background:#eee}
"#;

/// Elapsed times (`data-since`) tick every second.
const TICK_JS: &str = r#"
function tick(){const now=Date.now();for(const e of document.querySelectorAll('[data-since]')){const s=Math.max(0,Math.floor((now-Date.parse(e.dataset.since))/1000));e.textContent=(s>=3600?Math.floor(s/3600)+' h ':'')+(s>=60?Math.floor(s%3600/60)+' min ':'')+(s%60)+' s';}}
setInterval(tick,1000);tick();
"#;

/// The status fragment is replaced whenever the daemon publishes a new status.
const STATUS_JS: &str = r#"
const es=new EventSource('/api/status/events');
es.addEventListener('status',e=>{document.getElementById('status').innerHTML=e.data;tick();document.body.dataset.updates=(+(document.body.dataset.updates||0)+1);});
"#;

/// The live console appends each line as the server rendered it (escaped there).
const LIVE_JS: &str = r#"
const log=document.getElementById('log'),state=document.getElementById('state');
const es=new EventSource(log.dataset.src);
es.addEventListener('line',e=>{const atEnd=window.innerHeight+window.scrollY>=document.body.scrollHeight-8;const d=document.createElement('div');d.innerHTML=e.data;log.appendChild(d);if(atEnd)window.scrollTo(0,document.body.scrollHeight);});
es.addEventListener('skipped',e=>{state.textContent='output past the console limit is in the stored log ('+e.data+' lines)';});
es.addEventListener('end',e=>{const r=JSON.parse(e.data);state.innerHTML='';const s=document.createElement('span');s.className='st st-'+r.state;s.textContent=r.state;state.appendChild(s);es.close();document.body.dataset.ended=r.state;});
"#;

/// A whole page around `body`.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · seakeeper" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a href="/" { "seakeeper" }
                    a href="/" { "status" }
                    a href="/api/status" { "json" }
                    a href="/metrics" { "metrics" }
                }
                main { (body) }
                script { (PreEscaped(TICK_JS)) }
            }
        }
    }
}

fn state(s: &str) -> Markup {
    html! { span class={ "st st-" (s) } { (s) } }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn ledger_link(commit: &str) -> Markup {
    html! { a.mono href={ "/ledger/" (commit) } { (short(commit)) } }
}

fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// `/`: the status page; the fragment inside `#status` is what the stream replaces.
pub fn status_page(s: &Status) -> Markup {
    page(
        "status",
        html! {
            h1 { "Status" }
            div #status { (status_fragment(s)) }
            script { (PreEscaped(STATUS_JS)) }
        },
    )
}

/// The part of the status page that updates itself.
pub fn status_fragment(s: &Status) -> Markup {
    html! {
        p.muted {
            "updated " (s.updated_at) " · config in use " (short(&s.config_in_use))
            @if s.config_head != s.config_in_use { " · HEAD " (short(&s.config_head)) }
            " · " (s.running_jobs) " jobs running, " (s.queued_jobs) " queued"
        }
        @if let Some(a) = &s.ledger_alert { div.alert { b { "Ledger alert: " } (a) } }
        @if !s.config_errors.is_empty() {
            div.alert {
                b { "The config at HEAD " (short(&s.config_head)) " is invalid; "
                    (short(&s.config_in_use)) " stays in use:" }
                ul { @for e in &s.config_errors { li.mono { (e) } } }
            }
        }
        @if let Some(g) = &s.gerrit {
            @if let Some(e) = &g.error { div.alert { "Gerrit " (g.url) " cannot be read: " (e) } }
        }
        h2 { "Freezes" }
        @if s.freezes.is_empty() { p.muted { "none active" } } @else {
            table {
                tr { th { "freeze" } th { "holds" } th { "reason" } th { "ticket" } th { "set by config commit" } }
                @for f in &s.freezes {
                    tr.freeze {
                        td { b { (f.name) } }
                        td.mono { (f.scope.join(", ")) }
                        td { (f.reason) }
                        td { (f.ticket.as_deref().unwrap_or("")) }
                        td.mono { (short(&f.config_commit)) }
                    }
                }
            }
        }
        h2 { "Gate" }
        @if s.gate.is_empty() { p.muted { "no queue has items" } }
        @for q in &s.gate {
            div.queue data-queue=(q.name) {
                b { (q.name) } span.muted { " · window " (q.window) }
                @if !q.items.is_empty() {
                    table {
                        tr { th { "#" } th { "change" } th { "state" } th { "waits for" } th { "build" } th { "jobs" } }
                        @for it in &q.items {
                            tr.item {
                                td { @if it.position > 0 { (it.position) } }
                                td { (it.project) " " b { (it.change) } }
                                td { (state(&it.state)) }
                                td { (it.waits_for) }
                                td.mono { @if let Some(b) = &it.build { a href={ "/builds/" (b) } { (short(b)) } } }
                                td.mono { (it.jobs.join(", ")) }
                            }
                        }
                    }
                }
                @for w in &q.waiting { div.muted { "waiting to enter: " (w) } }
            }
        }
        h2 { "Builds in flight" }
        @if s.builds.is_empty() { p.muted { "none" } } @else {
            table {
                tr { th { "build" } th { "pipeline" } th { "project" } th { "what" } th { "jobs" } }
                @for b in &s.builds {
                    tr.build {
                        td.mono { a href={ "/builds/" (b.build_id) } { (short(&b.build_id)) } }
                        td { (b.pipeline) }
                        td { (b.project) }
                        td { (b.what) }
                        td {
                            @for j in &b.jobs {
                                div {
                                    (j.name) " " (state(&j.state))
                                    @if let Some(since) = &j.started_at {
                                        " " span.muted data-since=(since) {}
                                        " " a href={ "/builds/" (b.build_id) "/jobs/" (j.name) "/live" } { "live" }
                                    } @else if j.state == "queued" && !b.requested_at.is_empty() {
                                        " waiting " span.muted data-since=(b.requested_at) {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Promotions waiting" }
        @if s.promotions.is_empty() { p.muted { "none" } } @else {
            table {
                tr { th { "environment" } th { "image" } th { "digest" } th { "state" } th { "why" } }
                @for p in &s.promotions {
                    tr {
                        td { (p.environment) } td { (p.image) }
                        td.mono { a href={ "/trace/" (p.digest) } { (p.digest.get(..19).unwrap_or(&p.digest)) } }
                        td { (state(&p.state)) }
                        td { (p.reason) @if let Some(f) = &p.freeze { " (freeze " b { (f) } ")" } }
                    }
                }
            }
        }
        @if !s.notifications.is_empty() {
            h2 { "Notifications" }
            table {
                tr { th { "target" } th { "kind" } th { "pending" } th { "sent" } th { "failed" } th { "last error" } }
                @for n in &s.notifications {
                    tr {
                        td { (n.target) } td { (n.kind) } td { (n.pending) } td { (n.sent) }
                        td { (n.failed) } td.mono { (n.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if let Some(r) = &s.replication {
            h2 { "Replication" }
            p.mono { (serde_json::to_string(r).unwrap_or_default()) }
        }
    }
}

/// `/builds/<id>`.
pub fn build_page(b: &BuildView) -> Markup {
    let r = &b.request;
    page(
        &format!("build {}", b.build_id),
        html! {
            h1 { "Build " span.mono { (b.build_id) } " "
                @match &b.result { Some(res) => (state(res.status.as_str())), None => (state(if b.in_flight { "running" } else { "not recorded" })) } }
            table {
                tr { th { "pipeline" } td { (r.pipeline) " (" (r.trust.as_str()) ")" } }
                tr { th { "project" } td { (r.project) } }
                tr { th { "ref" } td.mono { (r.git_ref) } }
                @if let Some(c) = r.change {
                    tr { th { "change" } td {
                        a href={ "/changes/" (c) } { (c) }
                        @if let Some(p) = r.patchset { "," (p) }
                        @if let Some(u) = &b.gerrit_url { " · " a href=(u) { "in Gerrit" } }
                    } }
                }
                tr { th { "source commit" } td.mono { (r.source_commit) } }
                tr { th { "config commit" } td.mono { (r.config_commit) } }
                tr { th { "requested" } td { (r.requested_at) } }
                @if let Some(res) = &b.result {
                    tr { th { "ran" } td { (res.started_at) " – " (res.finished_at) } }
                }
                tr { th { "trace" } td { a href={ "/trace/" (b.build_id) } { "the auditor's view" } } }
            }
            h2 { "Jobs" }
            table {
                tr { th { "job" } th { "status" } th { "duration" } th { "log" } }
                @for j in &b.jobs {
                    tr.job {
                        td {
                            (j.name)
                            @if !j.needs.is_empty() { br; small { "needs " (j.needs.join(", ")) } }
                            @if let Some(i) = &j.image { br; small.mono { "in " (i) } }
                        }
                        td { (state(&j.status)) }
                        td { @if let Some(ms) = j.duration_ms { (millis(ms)) } @else if let Some(s) = &j.started_at { span data-since=(s) {} } }
                        td {
                            @if let Some(d) = &j.log { a.mono href={ "/logs/" (d) } { "log" } }
                            @else if b.in_flight { a href={ "/builds/" (b.build_id) "/jobs/" (j.name) "/live" } { "live console" } }
                        }
                    }
                }
            }
            @if let Some(l) = &b.landing {
                h2 { "Landing" }
                p { "Landed change " (l.change) "," (l.patchset) " on " (l.branch) " as "
                    span.mono { (l.commit) } " (was " span.mono { (short(l.old_tip.as_str())) } ")" }
            }
            @if !b.artifacts.is_empty() {
                h2 { "Artifacts" }
                table {
                    tr { th { "name" } th { "digest" } th { "attestations" } th { "promotions" } }
                    @for a in &b.artifacts {
                        tr {
                            td { (a.name.as_deref().unwrap_or("")) " " span.muted { (a.kind.as_deref().unwrap_or("")) } }
                            td.mono { @if let Some(d) = &a.digest { a href={ "/trace/" (d) } { (d.get(..19).unwrap_or(d)) } } }
                            td { @for at in &a.attestations { div { (at.predicate_type) " " (ledger_link(&at.ledger_commit)) } } }
                            td { @for p in &a.promotions { div { (p.environment) " " (p.promoted_at) " " (ledger_link(&p.ledger_commit)) } } }
                        }
                    }
                }
            }
            h2 { "Ledger" }
            table {
                tr { th { "record" } th { "path" } th { "commit" } }
                @for c in &b.ledger_commits { tr { td { (c.record) } td.mono { (c.path) } td { (ledger_link(&c.commit)) } } }
            }
        },
    )
}

/// `/builds/<id>/jobs/<job>/live`.
pub fn live_page(build: &str, job: &str, job_state: &str, src: &str) -> Markup {
    page(
        &format!("{job} of {build}"),
        html! {
            h1 { "Job " (job) " of build " a.mono href={ "/builds/" (build) } { (short(build)) } }
            p #state { (state(job_state)) }
            pre.log #log data-src=(src) {}
            script { (PreEscaped(LIVE_JS)) }
        },
    )
}

/// `/logs/<digest>`: a stored log, lines already rendered.
pub fn log_page(digest: &str, lines: &[String], truncated: bool) -> Markup {
    page(
        "log",
        html! {
            h1 { "Log " span.mono { (digest.get(..19).unwrap_or(digest)) } }
            p { a href={ "/api/logs/" (digest) } { "raw" } " · " a href={ "/trace/" (digest) } { "trace" } }
            @if truncated { p.alert { "Only the start of this log is shown; the raw log has all of it." } }
            pre.log #log { @for l in lines { div { (PreEscaped(l)) } } }
        },
    )
}

/// `/ledger/<commit>`.
pub fn commit_page(c: &CommitView) -> Markup {
    page(
        &format!("ledger {}", short(&c.commit)),
        html! {
            h1 { "Ledger commit " span.mono { (c.commit) } }
            @if c.signature.allowed { div.ok #signature { (c.signature.verdict) } }
            @else { div.alert #signature { (c.signature.verdict) } }
            @if !c.on_history { div.alert { "This commit is not on the ledger's history." } }
            table {
                tr { th { "summary" } td { (c.summary) } }
                tr { th { "time" } td { (c.time) } }
                tr { th { "parents" } td { @for p in &c.parents { (ledger_link(p)) " " } } }
                @for (k, v) in &c.trailers { tr { th { (k) } td.mono { (v) } } }
                @if let Some(s) = &c.signature.signer { tr { th { "signer" } td.mono { (s) } } }
                tr { th { "roles" } td { (c.signature.roles.join(", ")) } }
                @if let Some(k) = &c.signature.keys_of { tr { th { "keys of config commit" } td.mono { (k) } } }
                tr { th { "check it yourself" } td { code { (c.verify_command) } } }
            }
            h2 { "Records" }
            @for r in &c.records {
                h3.mono { (r.change) " " (r.path) }
                @if let Some(t) = &r.content { pre.mono { (t) } }
                @if r.truncated { p.muted { "(cut)" } }
            }
            @if c.more_records > 0 { p.muted { (c.more_records) " more records" } }
        },
    )
}

/// `/trace/<digest-or-build-id>`.
pub fn trace_page(what: &str, t: &Trace) -> Markup {
    page(
        &format!("trace {what}"),
        html! {
            h1 { "Trace of " span.mono { (what) } }
            table {
                @if let Some(d) = &t.digest { tr { th { "digest" } td.mono { (d) } } }
                @if let Some(n) = &t.name { tr { th { "name" } td { (n) " " span.muted { (t.kind.as_deref().unwrap_or("")) } } } }
                @if let Some(b) = &t.build_id { tr { th { "built by" } td.mono { a href={ "/builds/" (b) } { (b) } } } }
                @if let Some(s) = &t.status { tr { th { "outcome" } td { (state(s)) } } }
                @if let Some(p) = &t.project { tr { th { "project" } td { (p) } } }
                @if let Some(c) = t.change { tr { th { "change" } td { a href={ "/changes/" (c) } { (c) } @if let Some(p) = t.patchset { "," (p) } } } }
                @if let Some(c) = &t.source_commit { tr { th { "source commit" } td.mono { (c) } } }
                @if let Some(c) = &t.config_commit { tr { th { "config commit" } td.mono { (c) } } }
                @if let Some(l) = &t.landed { tr { th { "landed" } td { (l.branch) " as " span.mono { (l.commit) } " by gate build " a.mono href={ "/builds/" (l.gate_build) } { (short(&l.gate_build)) } " after " (l.votes.join(", ")) } } }
                @if !t.rebuilt_by.is_empty() { tr { th { "also built by" } td.mono { (t.rebuilt_by.join(", ")) } } }
            }
            @if !t.attestations.is_empty() {
                h2 { "Attestations" }
                table { @for a in &t.attestations { tr { td { (a.predicate_type) } td.mono { (a.keyids.join(", ")) } td { (ledger_link(&a.ledger_commit)) } } } }
            }
            @if !t.promotions.is_empty() {
                h2 { "Promotions" }
                table {
                    tr { th { "environment" } th { "image" } th { "when" } th { "config commit" } th { "now" } th { "ledger" } }
                    @for p in &t.promotions { tr { td { (p.environment) } td { (p.image) } td { (p.promoted_at) } td.mono { (short(&p.config_commit)) } td { @if p.current { "current" } } td { (ledger_link(&p.ledger_commit)) } } }
                }
            }
            @for a in &t.artifacts {
                h2 { "Artifact " (a.name.as_deref().unwrap_or("")) }
                p.mono { @if let Some(d) = &a.digest { a href={ "/trace/" (d) } { (d) } } }
            }
            h2 { "Ledger records" }
            table { @for r in &t.ledger_commits { tr { td { (r.record) } td.mono { (r.path) } td { (ledger_link(&r.ledger_commit)) } } } }
        },
    )
}

/// `/changes/<number>`.
pub fn change_page(n: u32, views: &[ChangeView]) -> Markup {
    page(
        &format!("change {n}"),
        html! {
            h1 { "Change " (n) }
            @for v in views {
                h2 { (v.project) }
                @for ps in &v.patchsets {
                    h3 { "Patchset " (ps.patchset) }
                    table {
                        tr { th { "build" } th { "pipeline" } th { "outcome" } th { "requested" } th { "commit" } }
                        @for b in &ps.builds {
                            tr.build {
                                td.mono { a href={ "/builds/" (b.build_id) } { (short(&b.build_id)) } }
                                td { (b.pipeline) }
                                td { (state(b.status.as_deref().unwrap_or("running"))) }
                                td { (b.requested_at) }
                                td.mono { (short(&b.source_commit)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A page saying what was not found.
pub fn not_found(what: &str) -> Markup {
    page(
        "not found",
        html! { h1 { "Not found" } p { (what) } p { a href="/" { "status" } } },
    )
}
