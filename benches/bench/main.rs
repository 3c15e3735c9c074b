//! `scripts/bench`: every performance case of guildkeep beside its baseline in the same run,
//! printed as a table and written to `target/bench/results.json`. Every figure is a median
//! of repeats; ratios compare figures taken in the same run, so they hold on a noisy machine.
//!
//! `--quick` runs every case at reduced size; `--only CASE` runs one case.
//! Cases live in their own files by the part they measure: `store_cases.rs`,
//! `zipf_cases.rs`, `scheduler_case.rs`, `ops_cases.rs`, `erasure_case.rs`,
//! `guild_data_cases.rs`.

mod erasure_case;
mod guild_data_cases;
mod measure;
mod ops_cases;
mod ops_data;
mod scheduler_case;
mod store_cases;
mod zipf_cases;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use serde_json::{json, Map, Value};

/// How many times each case runs, quick or full; its figures are the medians. Three is the
/// fewest that has a median, and the full run has fifteen minutes for all eight cases.
pub const REPEATS: usize = 3;

/// Puts a finished directory of scratch data out of the way instead of deleting it; the
/// scratch directory goes, with everything set aside, when the run ends. Deleting mid-run
/// would charge one case's clean-up to the next case's figures: this disk is mounted with
/// online discard, so a deletion is followed by discard I/O, and ext4 without a journal skips
/// inodes freed in the last minutes when it allocates new ones, scanning past each of them.
pub fn set_aside(path: &Path) {
    static SET_ASIDE: AtomicUsize = AtomicUsize::new(0);
    let n = SET_ASIDE.fetch_add(1, Ordering::Relaxed);
    let parent = path.parent().expect("scratch data has a parent directory");
    std::fs::rename(path, parent.join(format!("set-aside-{n}"))).expect("set scratch data aside");
}

/// Above this much scratch data between two cases, what was set aside is removed then, so
/// that the full run holds little more than the fleet of guilds that several cases share
/// (about 9 GB, kept to the end) and the largest case's data (backup's, about 6 GB): it peaked
/// at 17 GB of a disk shared with other work. A removal's discard I/O may reach into the next
/// case: the price of fitting.
const SET_ASIDE_BUDGET_GB: f64 = 9.0;

fn remove_set_aside(scratch: &Path) {
    for entry in std::fs::read_dir(scratch).expect("scratch directory") {
        let path = entry.expect("scratch entry").path();
        let set_aside = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("set-aside-"));
        if set_aside {
            std::fs::remove_dir_all(&path)
                .or_else(|_| std::fs::remove_file(&path))
                .expect("remove data set aside");
        }
    }
}

/// How big a run is.
#[derive(Clone, Copy)]
pub struct Size {
    pub quick: bool,
}

impl Size {
    pub fn pick(self, quick: usize, full: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// One row of the results.
pub struct Case {
    title: &'static str,
    ours: Value,
    baseline: Option<Value>,
    ratio: Option<f64>,
    goal: &'static str,
    met: bool,
    /// Figures beside the baseline that the goal does not compare with, by key.
    extra: Map<String, Value>,
}

impl Case {
    pub fn new(
        title: &'static str,
        ours: Value,
        baseline: Option<Value>,
        ratio: Option<f64>,
        goal: &'static str,
        met: bool,
    ) -> Self {
        Self {
            title,
            ours,
            baseline,
            ratio,
            goal,
            met,
            extra: Map::new(),
        }
    }

    /// Adds figures under `key`, beside `ours` and `baseline`.
    pub fn with(mut self, key: &str, figures: Value) -> Self {
        self.extra.insert(key.to_owned(), figures);
        self
    }

    fn json(&self) -> Value {
        let mut case = json!({
            "ours": self.ours,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met,
        });
        case.as_object_mut().unwrap().extend(self.extra.clone());
        case
    }
}

/// In the order they run: growth before zipf, which reuses the guilds growth created.
const CASES: &[&str] = &[
    "new_guild",
    "reopen",
    "hot",
    "growth",
    "zipf",
    "zipf_open_loop",
    "writers",
    "scheduler",
    "import",
    "backup",
    "erasure",
    "export_guild",
    "delete_guild",
];

/// Cases that measure each point in a fresh child process, run as `MODE DIR ARGS…`.
const GROWTH_POINT: &str = "--growth-point";
const SCHEDULER_POINT: &str = "--scheduler-point";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, dir, rest @ ..] = args.as_slice() {
        let dir = Path::new(dir);
        let figures = match mode.as_str() {
            GROWTH_POINT => {
                let guilds: u64 = rest[0].parse().expect("guild count");
                let uses: u64 = rest[1].parse().expect("uses per pass");
                Some(runtime().block_on(store_cases::growth_point(dir, guilds, uses)))
            }
            SCHEDULER_POINT => {
                let point = scheduler_case::Point::from_args(rest);
                Some(runtime().block_on(scheduler_case::scheduler_point(dir, &point)))
            }
            _ => None,
        };
        if let Some(figures) = figures {
            println!("{figures}");
            return;
        }
    }
    let size = Size {
        quick: args.iter().any(|a| a == "--quick"),
    };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|at| args[at + 1].clone());
    if let Some(case) = &only {
        assert!(
            CASES.contains(&case.as_str()),
            "unknown case {case}; cases: {CASES:?}"
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("guildkeep-bench-")
        .tempdir_in(
            std::env::var_os("BENCH_SCRATCH").map_or_else(std::env::temp_dir, PathBuf::from),
        )
        .expect("scratch directory");
    let runtime = runtime();
    let mut results = Map::new();
    for &name in CASES {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("running {name}...");
        let started = std::time::Instant::now();
        let case = runtime.block_on(run(name, size, scratch.path()));
        let held = disk_gb(scratch.path());
        eprintln!(
            "  {name}: {:.1} s; scratch holds {held:.1} GB",
            started.elapsed().as_secs_f64(),
        );
        if held > SET_ASIDE_BUDGET_GB {
            let removing = std::time::Instant::now();
            remove_set_aside(scratch.path());
            eprintln!(
                "  removed the data set aside: {:.1} s",
                removing.elapsed().as_secs_f64()
            );
        }
        print_row(name, &case);
        results.insert(name.to_owned(), case.json());
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let document = json!({ "quick": size.quick, "cases": results });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&document).unwrap(),
    )
    .expect("write results.json");
    println!("wrote {}", out.join("results.json").display());
}

async fn run(name: &str, size: Size, scratch: &Path) -> Case {
    match name {
        "new_guild" => store_cases::new_guild(size, scratch).await,
        "reopen" => store_cases::reopen(size, scratch).await,
        "hot" => store_cases::hot(size, scratch).await,
        "zipf" => zipf_cases::zipf(size, scratch).await,
        "zipf_open_loop" => zipf_cases::zipf_open_loop(size, scratch).await,
        "writers" => zipf_cases::writers(size, scratch).await,
        "growth" => {
            let measure = |dir: &Path, guilds: u64, uses: u64| {
                measure_in_child(GROWTH_POINT, dir, &[guilds.to_string(), uses.to_string()])
            };
            store_cases::growth(size, scratch, measure).await
        }
        "scheduler" => {
            let measure = |dir: &Path, point: &scheduler_case::Point| {
                measure_in_child(SCHEDULER_POINT, dir, &point.to_args())
            };
            scheduler_case::scheduler(size, scratch, measure).await
        }
        "import" => ops_cases::import(size, scratch).await,
        "backup" => ops_cases::backup(size, scratch).await,
        "erasure" => erasure_case::erasure(size, scratch).await,
        "export_guild" => guild_data_cases::export_guild(size, scratch).await,
        "delete_guild" => guild_data_cases::delete_guild(size, scratch).await,
        other => unreachable!("case {other} is listed but not run"),
    }
}

/// Runs this binary again as `mode dir args…` and reads the JSON figures it prints.
fn measure_in_child(mode: &str, dir: &Path, args: &[String]) -> Value {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(mode)
        .arg(dir)
        .args(args)
        .output()
        .expect("child process");
    assert!(
        out.status.success(),
        "{mode} child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("figures from the child")
}

/// What `dir` takes on disk, as `du` counts it: the run must fit beside other users of the disk.
fn disk_gb(dir: &Path) -> f64 {
    let out = std::process::Command::new("du")
        .args(["-sk", "--"])
        .arg(dir)
        .output()
        .expect("du");
    let kib: f64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0.0);
    kib / (1024.0 * 1024.0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn print_row(name: &str, case: &Case) {
    let ratio = case.ratio.map_or("—".to_owned(), |r| format!("{r:.2}"));
    let baseline = case
        .baseline
        .as_ref()
        .map_or("—".to_owned(), Value::to_string);
    let extra: String = case
        .extra
        .iter()
        .map(|(key, figures)| format!(" | {key} {figures}"))
        .collect();
    println!(
        "{:<10} {} | ours {} | baseline {}{} | ratio {} | goal: {} | {}",
        name,
        case.title,
        case.ours,
        baseline,
        extra,
        ratio,
        case.goal,
        if case.met { "met" } else { "MISSED" }
    );
}
