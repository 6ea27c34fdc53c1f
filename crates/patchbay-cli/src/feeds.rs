//! `patchbay feeds import` (runs next to the database, like `serve`) and
//! `patchbay scan` (offline, no server).

use crate::Format;
use crate::output::{json, table};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use patchbay_core::assess::{match_entries, match_key, target_for};
use patchbay_core::inventory::{OsRelease, Package, apk, dpkg, rpm};
use patchbay_feeds::RecordError;
use patchbay_feeds::epss::{EpssMeta, EpssScore};
use patchbay_feeds::kev::Catalog;
use patchbay_feeds::osv::Advisory;
use patchbay_feeds::source::{Collect, FeedSink, ImportSummary, read_path};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Collects records with a progress spinner; errors are printed as they come.
struct Progress {
    bar: ProgressBar,
    c: Collect,
    quiet_errors: bool,
}

impl Progress {
    fn new(show: bool) -> Self {
        let bar = if show {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self {
            bar,
            c: Collect::default(),
            quiet_errors: !show,
        }
    }

    fn tick(&self) {
        let c = &self.c;
        let n = c.advisories.len() + c.epss.len();
        if n.is_multiple_of(1000) {
            self.bar.set_message(format!(
                "{} advisories, {} KEV catalogs, {} EPSS scores, {} skipped",
                c.advisories.len(),
                c.kev.len(),
                c.epss.len(),
                c.errors.len()
            ));
        }
    }
}

impl FeedSink for Progress {
    fn on_advisory(&mut self, a: Advisory) {
        self.c.on_advisory(a);
        self.tick();
    }
    fn on_kev(&mut self, c: Catalog) {
        self.c.on_kev(c);
    }
    fn on_epss_meta(&mut self, m: &EpssMeta) {
        self.c.on_epss_meta(m);
    }
    fn on_epss(&mut self, s: EpssScore) {
        self.c.on_epss(s);
        self.tick();
    }
    fn on_cve_scores(&mut self, s: patchbay_feeds::scores::CveScores) {
        self.c.on_cve_scores(s);
    }
    fn on_csaf(&mut self, d: patchbay_feeds::csaf::Document) {
        self.c.on_csaf(d);
    }
    fn on_error(&mut self, e: RecordError) {
        if !self.quiet_errors {
            self.bar.println(format!("skipped: {e}"));
        }
        self.c.on_error(e);
    }
}

fn read_feeds(path: &Path, show: bool) -> anyhow::Result<(Collect, ImportSummary)> {
    let mut p = Progress::new(show);
    let summary = read_path(path, &mut p)
        .with_context(|| format!("reading feeds from {}", path.display()))?;
    p.bar.finish_and_clear();
    Ok((p.c, summary))
}

/// `patchbay feeds import` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Feed files: OSV JSON / JSONL / zip, CISA KEV JSON, FIRST EPSS CSV,
    /// NVD API 2.0 CVE records or pages and CVE JSON 5 records (CVSS scores
    /// with their source), CSAF 2.0 advisories and VEX documents, each also
    /// as zip or gzip; directories too with
    /// --db/--data-dir.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Local mode: write into this database directly (default with
    /// --data-dir: SQLite in DATA_DIR) instead of uploading to PATCHBAY_URL.
    #[arg(long)]
    pub db: Option<String>,
    /// Local mode: the server's data directory (its signing key, and its
    /// SQLite database unless --db).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `patchbay feeds import`: uploads each file to the server at `url` when
/// it was given (`--url` / `PATCHBAY_URL`); with `--db` / `--data-dir`,
/// stores them next to the database instead. With neither it fails, naming
/// both.
pub fn import(a: ImportArgs, url: Option<&str>, token: Option<String>) -> anyhow::Result<()> {
    if a.db.is_some() || a.data_dir.is_some() {
        return import_local(a);
    }
    let Some(url) = url else {
        bail!(
            "no server and no database: set PATCHBAY_URL (or --url) to upload the feeds to a \
             server, or give --db / --data-dir to write into a server's database directly"
        );
    };
    let client = crate::conn::connect(url, token)?;
    for path in &a.paths {
        upload(&client, path)?;
    }
    Ok(())
}

/// Uploads one feed file (`POST /api/v1/feeds/import`), with a progress bar
/// on a terminal; prints what the server imported.
fn upload(client: &patchbay_client::Client, path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{}: is a directory; upload its files one by one (or a zip of them), or import it \
             locally with --data-dir",
            path.display()
        );
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload".into());
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if tty {
        ProgressBar::new(meta.len())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("uploading {name}"));
    let mut reader = bar.wrap_read(file);
    let out: patchbay_proto::api::FeedImportOut = client
        .post_stream(
            &format!("/api/v1/feeds/import?name={}", crate::conn::enc(&name)),
            "application/octet-stream",
            &mut reader,
            Some(meta.len()),
        )
        .with_context(|| format!("uploading {}", path.display()))?;
    bar.finish_and_clear();
    print_import(&out);
    Ok(())
}

/// Prints what an import stored (one line per feed, the re-assessment,
/// the zero-day lane); text of the server's (or the feed's) making goes
/// through [`crate::output::clean`], so it cannot drive the terminal.
pub fn print_import(o: &patchbay_proto::api::FeedImportOut) {
    use crate::output::clean;
    let source = clean(&o.source);
    for f in &o.imported {
        let version = clean(&f.version);
        match f.kind.as_str() {
            "kev" => println!(
                "{}: KEV catalog {}: {} entries, {} newly in KEV",
                source, version, f.records, f.kev_added
            ),
            "epss" => println!(
                "{}: EPSS {}: {} scores, {} skipped",
                source, version, f.records, f.skipped
            ),
            "cvss" => println!(
                "{}: CVSS: scores of {} CVEs stored, {} skipped",
                source, f.records, f.skipped
            ),
            "csaf" => println!(
                "{}: CSAF: {} documents stored, {} refused",
                source, f.records, f.skipped
            ),
            _ => println!(
                "{}: OSV: {} advisories stored, {} skipped",
                source, f.records, f.skipped
            ),
        }
    }
    println!(
        "assessed the fleet: {} findings opened, {} reopened, {} resolved",
        o.findings_opened, o.findings_reopened, o.findings_resolved
    );
    if let Some(z) = &o.zero_day {
        println!(
            "zero-day lane: {} finding(s) raised to P0 by {} CVE(s) newly in KEV; proposed out-of-band deployment {}",
            z.findings,
            z.cves.len(),
            clean(z.deployment.as_deref().unwrap_or("-"))
        );
    }
}

/// Local mode: reads feeds, stores them next to the database, re-assesses
/// the fleet. Refuses a database no server has initialised.
fn import_local(a: ImportArgs) -> anyhow::Result<()> {
    let data_dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./patchbay-data"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let url =
            a.db.clone()
                .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("patchbay.db").display()));
        if !patchbay_store::initialised(&url).await? {
            bail!(
                "{}: no server has initialised this database (start `patchbay serve` on it once \
                 first, or point --db / --data-dir at the server's)",
                patchbay_store::redact_url(&url)
            );
        }
        let settings = patchbay_server::Settings {
            db_url: a.db.clone(),
            data_dir,
            app: patchbay_app::AppConfig::default(),
        };
        let prepared = patchbay_server::setup::prepare_tool(&settings).await?;
        let app = prepared.app;
        let by = patchbay_app::Caller::local(
            &std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        );
        import_with(&app, &a.paths, &by).await?;
        app.store().close().await;
        Ok(())
    })
}

/// Imports feed files or directories through `app`, re-assesses the fleet and
/// runs the zero-day lane; prints a line per feed.
pub async fn import_with(
    app: &patchbay_app::App,
    paths: &[PathBuf],
    by: &patchbay_app::Caller,
) -> anyhow::Result<()> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut kev_added = std::collections::BTreeSet::new();
    for path in paths {
        let source = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        let (p, summary) = read_feeds(path, tty)?;
        if !tty {
            for e in &p.errors {
                eprintln!("skipped: {e}");
            }
        }
        let stored = app
            .store_collected(&source, &p, &summary, by)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        for f in &stored.imported {
            match f.kind.as_str() {
                "osv" => println!(
                    "{source}: OSV: {} advisories stored, {} skipped",
                    f.records, f.skipped
                ),
                "kev" => println!(
                    "{source}: KEV catalog {}: {} entries, {} newly in KEV",
                    f.version, f.records, f.kev_added
                ),
                "cvss" => println!(
                    "{source}: CVSS: scores of {} CVEs stored, {} skipped",
                    f.records, f.skipped
                ),
                "csaf" => println!(
                    "{source}: CSAF: {} documents stored, {} refused",
                    f.records, f.skipped
                ),
                _ => println!(
                    "{source}: EPSS {}: {} scores, {} skipped",
                    f.version, f.records, f.skipped
                ),
            }
        }
        kev_added.extend(stored.kev_added);
        if summary.osv.files
            + summary.kev.files
            + summary.epss.files
            + summary.cvss.files
            + summary.csaf.files
            == 0
        {
            bail!(
                "{}: no feed files found (OSV JSON/JSONL/zip, KEV JSON, EPSS CSV, NVD / CVE JSON 5 records, CSAF 2.0 documents)",
                path.display()
            );
        }
    }
    let bar = if tty {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    // Delta re-assessment: only the (ecosystem, package) pairs the imports
    // changed, on the hosts that have them (KEV and EPSS change no match).
    let d = app
        .assess_pending(&|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    bar.finish_and_clear();
    println!(
        "assessed the fleet: {} findings opened, {} reopened, {} resolved, {} still open \
         ({} changed (ecosystem, package) pairs on {} assets; {} package versions evaluated, {} reused)",
        d.stats.opened,
        d.stats.reopened,
        d.stats.resolved,
        d.stats.still_open,
        d.pairs,
        d.assets,
        d.evaluated,
        d.reused
    );
    // The zero-day lane: CVEs that entered KEV with this import.
    if let Some(ev) = app
        .zero_day_lane("feeds import", &Vec::from_iter(kev_added), by)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?
    {
        println!(
            "zero-day lane: {} finding(s) raised to P0 by {} CVE(s) newly in KEV; proposed out-of-band deployment {}",
            ev.findings,
            ev.cves.len(),
            ev.deployment.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// Indexes OSV records as the reader yields them (what `advisory_row` +
/// `patchbay_app::assess::build_index` would give, without keeping the
/// records); keeps KEV catalogs and EPSS scores; prints skipped records.
#[derive(Default)]
struct IndexSink {
    index: patchbay_core::assess::Index,
    kev: Vec<Catalog>,
    epss: Vec<EpssScore>,
}

impl FeedSink for IndexSink {
    fn on_advisory(&mut self, a: Advisory) {
        patchbay_app::feeds::index_advisory(&mut self.index, &a);
    }
    fn on_kev(&mut self, c: Catalog) {
        self.kev.push(c);
    }
    fn on_epss(&mut self, s: EpssScore) {
        self.epss.push(s);
    }
    fn on_error(&mut self, e: RecordError) {
        eprintln!("skipped: {e}");
    }
}

/// `patchbay scan` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("inventory").required(true).args(["dpkg_status", "apk_installed", "rpm_list"]))]
pub struct ScanArgs {
    /// A dpkg status file (/var/lib/dpkg/status).
    #[arg(long)]
    pub dpkg_status: Option<PathBuf>,
    /// An apk installed database (/lib/apk/db/installed).
    #[arg(long)]
    pub apk_installed: Option<PathBuf>,
    /// Output of: rpm -qa --queryformat '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n'
    #[arg(long)]
    pub rpm_list: Option<PathBuf>,
    /// The OS as ID:VERSION_ID from os-release, e.g. debian:12, ubuntu:24.04, alpine:3.20, almalinux:9.
    #[arg(long)]
    pub os: String,
    /// A directory (or file) of feeds: OSV JSON/JSONL/zip, KEV JSON, EPSS CSV.
    #[arg(long)]
    pub feeds: PathBuf,
    /// The compiled advisory index to use (built from --feeds on first use, rebuilt
    /// when the feeds change or the file is corrupt). Default:
    /// $XDG_CACHE_HOME/patchbay/advisories-<hash of the feeds path>.pbidx
    /// (~/.cache/patchbay/… without XDG_CACHE_HOME).
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One finding of an offline scan.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ScanFinding {
    /// Installed package.
    pub package: String,
    /// Source package the advisory is keyed by.
    pub source_package: String,
    /// Installed version.
    pub installed_version: String,
    /// Version that fixes it.
    pub fixed_version: Option<String>,
    /// Advisory id.
    pub advisory: String,
    /// CVE ids.
    pub cves: Vec<String>,
    /// CVSS base score.
    pub cvss: Option<f64>,
    /// Highest EPSS of its CVEs.
    pub epss: Option<f64>,
    /// Whether a CVE is in KEV.
    pub kev: bool,
}

/// A parser of one package-database format.
type PackageParser = fn(&str) -> Result<Vec<Package>, patchbay_core::inventory::ParseError>;

/// One finding of an offline scan as it is printed: a [`ScanFinding`]
/// (same fields, same order, same JSON) borrowing what the scan decoded
/// instead of copying five strings and a list per finding.
#[derive(Debug, Clone, Copy, Serialize)]
struct Found<'a> {
    package: &'a str,
    source_package: &'a str,
    installed_version: &'a str,
    fixed_version: Option<&'a str>,
    advisory: &'a str,
    cves: &'a [String],
    cvss: Option<f64>,
    epss: Option<f64>,
    kev: bool,
}

/// What a scan computed.
struct Scanned {
    /// The findings, in the order they were found.
    findings: Vec<Found<'static>>,
    /// Positions in `findings`, in the printed order.
    order: Vec<u32>,
    /// Packages read from the inventory.
    packages: usize,
}

impl Scanned {
    /// The findings in the printed order (package, architecture, advisory).
    fn ordered(&self) -> Vec<Found<'static>> {
        self.order
            .iter()
            .map(|&k| self.findings[k as usize])
            .collect()
    }
}

/// Scans one host's package list against feeds, without a server. What it
/// reads and decodes is leaked, never freed (tens of thousands of
/// allocations, a tenth of a warm scan's time), and the findings borrow it:
/// `patchbay scan` calls this once and its process ends after printing.
fn scan_parts(a: &ScanArgs) -> anyhow::Result<Scanned> {
    let (path, parse): (&PathBuf, PackageParser) =
        match (&a.dpkg_status, &a.apk_installed, &a.rpm_list) {
            (Some(p), _, _) => (p, dpkg::parse_status),
            (_, Some(p), _) => (p, apk::parse_installed),
            (_, _, Some(p)) => (p, rpm::parse_query_list),
            _ => bail!("give one of --dpkg-status, --apk-installed, --rpm-list"),
        };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let packages: &'static [Package] = parse(&text)
        .with_context(|| format!("parsing {}", path.display()))?
        .leak();
    let (id, version) = a.os.split_once(':').ok_or_else(|| {
        anyhow::anyhow!("--os must be ID:VERSION, e.g. debian:12 (got {:?})", a.os)
    })?;
    let os = OsRelease {
        id: id.to_ascii_lowercase(),
        version_id: version.into(),
        ..Default::default()
    };
    let target = target_for(&os).map_err(|e| anyhow::anyhow!("--os {}: {e}", a.os))?;
    let index_path = match &a.index {
        Some(p) => p.clone(),
        None => crate::advisory_index::default_path(&a.feeds)?,
    };
    // An index inside the feeds would be read as a feed and change the key it
    // is checked against: it would be rebuilt on every run.
    // (Hidden files and directories are not read as feeds, so an index
    // under a dot-name there is fine. The index's own directory may not
    // exist yet: its nearest existing ancestor is resolved.)
    let resolved = std::path::absolute(&index_path).ok().and_then(|p| {
        p.ancestors().skip(1).find_map(|d| {
            let rest = p.strip_prefix(d).ok()?;
            Some(std::fs::canonicalize(d).ok()?.join(rest))
        })
    });
    if let (Some(index_abs), Ok(feeds)) = (resolved, std::fs::canonicalize(&a.feeds))
        && let Ok(rel) = index_abs.strip_prefix(&feeds)
        && !rel
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
    {
        bail!(
            "--index {} is inside --feeds {}: put the index elsewhere (by default it lives in $XDG_CACHE_HOME/patchbay)",
            index_path.display(),
            a.feeds.display()
        );
    }
    let (compiled, _) =
        crate::advisory_index::load_or_build(&index_path, &a.feeds, |key, note| {
            // Each record goes into the index as it is read (none is kept).
            let mut sink = IndexSink::default();
            read_path(&a.feeds, &mut sink)
                .with_context(|| format!("reading feeds from {}", a.feeds.display()))?;
            Ok(crate::advisory_index::compile_feeds(
                key,
                note,
                &sink.index,
                &sink.kev,
                &sink.epss,
            ))
        })?;
    let corrupt = |e: patchbay_core::compiled::IndexError| {
        anyhow::anyhow!(
            "advisory index {}: {e}; delete it to rebuild",
            index_path.display()
        )
    };
    // Matching straight from the compiled index: each source package's
    // entries decoded once, evaluated by `match_entries` (what the server's
    // `Index::match_version` runs) once per (source package, version) — the
    // binary packages of one source share it — and only the advisories that
    // match decoded, with their KEV and EPSS looked up once.
    // (Both maps' values are leaked: the findings borrow them.)
    type Matched = (
        Vec<patchbay_core::assess::Match>,
        Vec<patchbay_core::assess::Problem>,
    );
    type Facts = (patchbay_core::assess::AdvisoryInfo, bool, Option<f64>);
    let mut entries: HashMap<&str, Vec<patchbay_core::assess::AffectedEntry>> = HashMap::new();
    let mut matched: HashMap<(&str, &str), &'static Matched> = HashMap::new();
    // Decoded advisories with their KEV flag and EPSS, by compiled number.
    let mut advisories: HashMap<usize, &'static Facts> = HashMap::new();
    let mut problems: Vec<patchbay_core::assess::Problem> = Vec::new();
    let mut out: Vec<Found<'static>> = Vec::with_capacity(packages.len() * 8);
    let mut order: Vec<(u32, u32)> = Vec::with_capacity(packages.len() * 8);
    for (i, p) in packages.iter().enumerate() {
        let (name, version) = match_key(p, target.key_by);
        let (ms, ps) = match matched.entry((name, version)) {
            std::collections::hash_map::Entry::Occupied(o) => *o.get(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let es = match entries.entry(name) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(compiled.entries(&target.ecosystem, name).map_err(corrupt)?)
                    }
                };
                let m = match_entries(target.scheme, es, version, |a| {
                    compiled
                        .advisory_id(a)
                        .map_or_else(|_| format!("#{a}"), str::to_string)
                });
                *v.insert(Box::leak(Box::new(m)))
            }
        };
        for pr in ps.iter() {
            if !problems.contains(pr) {
                problems.push(pr.clone());
            }
        }
        for m in ms.iter() {
            let (adv, kev, epss) = match advisories.entry(m.advisory) {
                std::collections::hash_map::Entry::Occupied(o) => *o.get(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let adv = compiled.advisory(m.advisory).map_err(corrupt)?;
                    let mut kev = false;
                    let mut epss: Option<f64> = None;
                    for c in &adv.cves {
                        kev |= compiled.kev(c).map_err(corrupt)?;
                        if let Some(s) = compiled.epss(c).map_err(corrupt)? {
                            epss = Some(epss.map_or(s, |e| e.max(s)));
                        }
                    }
                    *v.insert(Box::leak(Box::new((adv, kev, epss))))
                }
            };
            order.push((i as u32, out.len() as u32));
            out.push(Found {
                kev: *kev,
                epss: *epss,
                package: &p.name,
                source_package: name,
                installed_version: &p.version,
                fixed_version: m.fixed.as_deref(),
                advisory: &adv.id,
                cves: &adv.cves,
                cvss: adv.cvss,
            });
        }
    }
    for p in &problems {
        eprintln!("advisory {} skipped: {}", p.advisory, p.message);
    }
    // The order the server's assessment gives: package, architecture, advisory.
    order.sort_by(|&(i, a), &(j, b)| {
        let (p, q) = (&packages[i as usize], &packages[j as usize]);
        (&p.name, &p.arch, out[a as usize].advisory).cmp(&(
            &q.name,
            &q.arch,
            out[b as usize].advisory,
        ))
    });
    let order = order.into_iter().map(|(_, k)| k).collect();
    std::mem::forget(matched);
    std::mem::forget(entries);
    std::mem::forget(advisories);
    std::mem::forget(compiled);
    Ok(Scanned {
        findings: out,
        order,
        packages: packages.len(),
    })
}

/// `patchbay scan`
pub fn scan(a: ScanArgs) -> anyhow::Result<()> {
    let scanned = scan_parts(&a)?;
    let (findings, n) = (scanned.ordered(), scanned.packages);
    match a.format {
        Format::Json => json(&findings)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = findings
                .iter()
                .map(|f| {
                    vec![
                        f.package.to_string(),
                        f.installed_version.to_string(),
                        f.fixed_version.unwrap_or("-").to_string(),
                        f.advisory.to_string(),
                        f.cves.join(","),
                        f.cvss
                            .map(|c| format!("{c:.1}"))
                            .unwrap_or_else(|| "-".into()),
                        f.epss
                            .map(|c| format!("{c:.3}"))
                            .unwrap_or_else(|| "-".into()),
                        if f.kev { "KEV".into() } else { String::new() },
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "PACKAGE",
                        "INSTALLED",
                        "FIXED",
                        "ADVISORY",
                        "CVES",
                        "CVSS",
                        "EPSS",
                        "KEV"
                    ],
                    &rows
                )
            );
            eprintln!("{} findings in {n} packages", findings.len());
        }
    }
    // The process ends here: what the scan allocated is not freed one by one.
    std::mem::forget(scanned);
    Ok(())
}

/// `patchbay feeds mirror` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MirrorArgs {
    /// The mirror directory (created if missing).
    pub dir: PathBuf,
    /// The server configuration file whose [[feed_source]]s (url or path)
    /// are mirrored.
    #[arg(long)]
    pub config: PathBuf,
    /// The mirror's Ed25519 signing key (hex seed, mode 0600); created if it
    /// does not exist. Its public key is printed: the server's `mirror_key`.
    #[arg(long)]
    pub key: PathBuf,
}

/// `patchbay feeds mirror DIR`: fetches every configured url/path source
/// into DIR, checks each parses as its kind, and writes the signed manifest
/// (`manifest.json`, `manifest.json.sig`).
pub fn mirror(a: MirrorArgs) -> anyhow::Result<()> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let file = patchbay_server::config::load(Some(&a.config), env)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let cfg = file
        .feed_sync()
        .map_err(|e| anyhow::anyhow!("configuration: {}: {e}", a.config.display()))?;
    let signer = if a.key.exists() {
        patchbay_app::keys::read_key_file(&a.key).map_err(anyhow::Error::msg)?
    } else {
        let seed = patchbay_app::new_signing_seed();
        patchbay_app::keys::write_key_file(&a.key, &seed)
            .with_context(|| format!("writing {}", a.key.display()))?;
        eprintln!("created the mirror key {}", a.key.display());
        patchbay_core::audit::Signer::from_seed(&seed)
    };
    let manifest = patchbay_app::feed_sync::write_mirror(
        &a.dir,
        &cfg.sources,
        &signer,
        jiff::Timestamp::now(),
        &mut |line| println!("{line}"),
    )
    .map_err(anyhow::Error::msg)?;
    println!(
        "wrote {} ({} files, signed); mirror public key (the server's mirror_key): {}",
        a.dir.join(patchbay_app::feed_sync::MANIFEST).display(),
        manifest.files.len(),
        signer.public_hex()
    );
    Ok(())
}
