//! Chart archives as Helm's `LoadArchiveFiles` reads them, built in memory: hostile entry
//! names, decompression bombs, nesting, and loading linear in the number of entries.

use capstan_helm::{load, load_archive, load_archive_with, HelmError, LoadLimits};
use capstan_vfs::MemFs;
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::Path;

const CHART_YAML: &[u8] = b"apiVersion: v2\nname: bomb\nversion: 0.1.0\n";

/// One tar entry: a raw name (not checked, not normalised), the size the header declares,
/// the data actually written, and the entry type.
struct Entry<'a> {
    name: &'a str,
    declared: u64,
    data: &'a [u8],
    kind: tar::EntryType,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        declared: data.len() as u64,
        data,
        kind: tar::EntryType::Regular,
    }
}

fn tar_bytes(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let name = e.name.as_bytes();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_size(e.declared);
        h.set_mode(0o644);
        h.set_entry_type(e.kind);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        let pad = (512 - e.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    gz(&tar_bytes(entries))
}

fn err(r: Result<capstan_helm::Chart, HelmError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, loaded chart {}", c.name()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn archive_loads_and_later_duplicates_replace_earlier() {
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        file("bomb/templates/a.yaml", b"one"),
        file("bomb/templates/a.yaml", b"two"),
        file("bomb/values.yaml", b"\xEF\xBB\xBFx: 1\n"),
    ]);
    let c = load_archive(&tgz).unwrap();
    assert_eq!(c.name(), "bomb");
    assert_eq!(c.templates.len(), 1);
    assert_eq!(c.templates[0].data, b"two");
    // Helm trims a UTF-8 byte order mark
    assert!(c.values.contains_key("x"));
}

#[test]
fn archive_entry_with_absolute_path_is_rejected() {
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        file("bomb//etc/passwd", b"x"),
    ]);
    let e = err(load_archive(&tgz));
    assert!(e.contains("chart illegally contains absolute paths"), "{e}");
}

#[test]
fn archive_entry_with_parent_reference_is_rejected() {
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        file("bomb/../../etc/cron.d/x", b"x"),
    ]);
    let e = err(load_archive(&tgz));
    assert!(
        e.contains("chart illegally references parent directory"),
        "{e}"
    );
}

#[test]
fn archive_entry_outside_the_chart_directory_is_rejected() {
    let tgz = archive(&[file("bomb/Chart.yaml", CHART_YAML), file("README", b"x")]);
    let e = err(load_archive(&tgz));
    assert!(
        e.contains("chart illegally contains content outside the base directory: \"README\""),
        "{e}"
    );
}

#[test]
fn archive_entry_with_drive_letter_is_rejected() {
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        file("bomb\\c:\\windows\\x", b"x"),
    ]);
    let e = err(load_archive(&tgz));
    assert!(e.contains("chart contains illegally named files"), "{e}");
}

#[test]
fn archive_chart_yaml_at_the_top_is_rejected() {
    let tgz = archive(&[file("Chart.yaml", CHART_YAML)]);
    let e = err(load_archive(&tgz));
    assert!(
        e.contains("chart illegally contains content outside the base directory")
            || e.contains("chart yaml not in base directory"),
        "{e}"
    );
}

#[test]
fn archive_symlink_is_an_empty_file_never_followed() {
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        Entry {
            name: "bomb/files/passwd",
            declared: 0,
            data: b"",
            kind: tar::EntryType::Symlink,
        },
    ]);
    let c = load_archive(&tgz).unwrap();
    let f = c.files.iter().find(|f| f.name == "files/passwd").unwrap();
    assert!(f.data.is_empty());
}

#[test]
fn archive_entry_declaring_two_gigabytes_fails_before_decompressing() {
    // a tiny archive whose entry claims 2 GiB: refused on its header
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        Entry {
            name: "bomb/huge.bin",
            declared: 2 << 30,
            data: b"",
            kind: tar::EntryType::Regular,
        },
    ]);
    let mut fs = MemFs::new();
    fs.add("/charts/bomb-0.1.0.tgz", &tgz);
    let e = err(load(&fs, Path::new("/charts/bomb-0.1.0.tgz")));
    assert!(e.contains("/charts/bomb-0.1.0.tgz"), "{e}");
    assert!(
        e.contains("decompressed chart is larger than the maximum size 104857600"),
        "{e}"
    );
}

#[test]
fn archive_bomb_of_many_entries_stops_at_the_total_limit() {
    // 64 entries of 64 KiB zeros (4 MiB) against a 1 MiB limit: fails after reading at
    // most the limit
    let zeros = vec![0u8; 64 * 1024];
    let names: Vec<String> = (0..64).map(|i| format!("bomb/files/z{i}")).collect();
    let mut entries = vec![file("bomb/Chart.yaml", CHART_YAML)];
    entries.extend(names.iter().map(|n| file(n, &zeros)));
    let tgz = archive(&entries);
    assert!(tgz.len() < 64 * 1024, "{}", tgz.len());
    let limits = LoadLimits {
        max_chart_size: 1 << 20,
        ..LoadLimits::default()
    };
    let e = err(load_archive_with(&tgz, "bomb-0.1.0.tgz", &limits));
    assert!(e.contains("bomb-0.1.0.tgz"), "{e}");
    assert!(
        e.contains("decompressed chart is larger than the maximum size 1048576"),
        "{e}"
    );
}

#[test]
fn archive_file_over_the_per_file_limit_is_rejected_when_set() {
    let big = vec![b'x'; 6 * 1024 * 1024];
    let tgz = archive(&[
        file("bomb/Chart.yaml", CHART_YAML),
        file("bomb/values.schema.json", &big),
    ]);
    // Helm 4.2: only the total counts
    assert!(load_archive(&tgz).is_ok());
    let limits = LoadLimits {
        max_file_size: capstan_helm::chart::MAX_DECOMPRESSED_FILE_SIZE,
        ..LoadLimits::default()
    };
    let e = err(load_archive_with(&tgz, "bomb-0.1.0.tgz", &limits));
    assert!(
        e.contains("decompressed chart file \"bomb/values.schema.json\" is larger than the maximum file size 5242880"),
        "{e}"
    );
}

#[test]
fn nested_subchart_archives_share_one_budget() {
    // each level's subchart is an archive; together they exceed the limit although each
    // alone is under it
    let zeros = vec![0u8; 300 * 1024];
    let mut inner = archive(&[
        file(
            "leaf/Chart.yaml",
            b"apiVersion: v2\nname: leaf\nversion: 0.1.0\n",
        ),
        file("leaf/files/z", &zeros),
    ]);
    for level in 0..4 {
        let name = format!("l{level}");
        let chart_yaml = format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\n");
        let z = format!("{name}/files/z");
        let sub = format!("{name}/charts/sub.tgz");
        let cy = format!("{name}/Chart.yaml");
        inner = archive(&[
            file(&cy, chart_yaml.as_bytes()),
            file(&z, &zeros),
            file(&sub, &inner),
        ]);
    }
    let limits = LoadLimits {
        max_chart_size: 1 << 20,
        ..LoadLimits::default()
    };
    let e = err(load_archive_with(&inner, "l3-0.1.0.tgz", &limits));
    assert!(e.contains("error unpacking subchart sub.tgz"), "{e}");
    assert!(e.contains("larger than the maximum size 1048576"), "{e}");
    assert!(load_archive(&inner).is_ok());
}

#[test]
fn subcharts_nested_too_deep_are_rejected() {
    let mut fs = MemFs::new();
    let mut dir = String::from("/c");
    for i in 0..70 {
        fs.add(
            format!("{dir}/Chart.yaml"),
            format!("apiVersion: v2\nname: c{i}\nversion: 0.1.0\n"),
        );
        dir.push_str(&format!("/charts/c{}", i + 1));
    }
    let e = err(load(&fs, Path::new("/c")));
    assert!(e.contains("subcharts nested deeper than 64 levels"), "{e}");
}

#[test]
fn directory_chart_over_the_total_limit_is_rejected() {
    let mut fs = MemFs::new();
    fs.add("/c/Chart.yaml", CHART_YAML);
    fs.add("/c/files/a", vec![0u8; 700 * 1024]);
    fs.add("/c/files/b", vec![0u8; 700 * 1024]);
    let limits = LoadLimits {
        max_chart_size: 1 << 20,
        ..LoadLimits::default()
    };
    let e = err(capstan_helm::load_with(&fs, Path::new("/c"), &limits));
    assert!(
        e.contains("/c: chart exceeds maximum decompressed size of 1048576 bytes"),
        "{e}"
    );
}

#[test]
fn archive_with_many_entries_loads_in_linear_time() {
    // 20000 entries: a per-entry scan of the entries read so far would make this
    // 200 million name comparisons
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("bomb/files/f{i}.txt"))
        .collect();
    let mut entries = vec![file("bomb/Chart.yaml", CHART_YAML)];
    entries.extend(names.iter().map(|n| file(n, b"x")));
    let c = load_archive(&archive(&entries)).unwrap();
    assert_eq!(c.files.len(), 20_000);
}
