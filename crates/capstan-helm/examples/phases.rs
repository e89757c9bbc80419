//! Dev tool: time the phases of rendering a chart. `phases CHART_DIR [N]`
use capstan_helm::engine::{Capabilities, ReleaseInfo};
use capstan_vfs::DiskFs;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let fs = DiskFs::new(dir).unwrap();
    let caps = Capabilities::default();
    let rel = ReleaseInfo {
        name: "release-name".into(),
        namespace: "default".into(),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    };
    let (mut tl, mut td, mut tc, mut tr, mut ts) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for _ in 0..n {
        let t = Instant::now();
        let mut chart = capstan_helm::load(&fs, Path::new("/")).unwrap();
        tl += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut w = Vec::new();
        capstan_helm::deps::process_dependencies(&mut chart, &capstan_helm::Map::new(), &mut w)
            .unwrap();
        td += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let vals =
            capstan_helm::coalesce::coalesce_values(&chart, &capstan_helm::Map::new(), &mut w)
                .unwrap();
        tc += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut files = capstan_helm::render_files(&chart, &vals, &rel, &caps).unwrap();
        files.retain(|k, _| !k.ends_with("NOTES.txt"));
        tr += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = capstan_helm::manifest::sort_manifests(&files).unwrap();
        ts += t.elapsed().as_secs_f64();
    }
    let f = |x: f64| x * 1000.0 / n as f64;
    println!(
        "load {:.2}ms deps {:.2}ms coalesce {:.2}ms render {:.2}ms sort {:.2}ms",
        f(tl),
        f(td),
        f(tc),
        f(tr),
        f(ts)
    );
}
