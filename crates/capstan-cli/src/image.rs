//! `capstan image`: Flux image automation offline (policy debugging, setter rewrites).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use capstan_image::{ImagePolicy, ImageRef, ObjectKey};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Print the tag an ImagePolicy elects from a list of tags, as Flux's
    /// image-reflector-controller does (semver, alphabetical, numerical, filterTags),
    /// offline. Exit 2 when no tag is elected (the reason on stderr).
    Select {
        /// A YAML file holding the ImagePolicy (other documents are ignored).
        #[arg(long)]
        policy: PathBuf,
        /// The tags, one per line (`-` for stdin); blank lines are skipped.
        #[arg(long)]
        tags: PathBuf,
        /// Which ImagePolicy of the file (NAME or NAMESPACE/NAME), when it holds several.
        #[arg(long)]
        name: Option<String>,
    },
    /// Rewrite the fields marked `# {"$imagepolicy": "NS:NAME[:tag|:name|:digest]"}` in
    /// the YAML files under PATH (as ImageUpdateAutomation's `update.path`) to the given
    /// latest images, changing nothing else in the files; prints each change.
    /// `--dry-run` prints without writing.
    SetImages {
        /// A file or directory (walked; `.yaml`/`.yml` files and files named `Kustomization`).
        path: PathBuf,
        /// `NAMESPACE/NAME=IMAGE:TAG[@DIGEST]`, the latest image of a policy (repeatable).
        #[arg(long = "latest", value_name = "NS/NAME=REF", required = true)]
        latest: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Scan an ImageRepository's registry (the distribution API, every page of tags;
    /// `exclusionList`, default `^.*\.sig$`) and elect each ImagePolicy's latest image,
    /// as Flux's image-reflector-controller does; prints the status Flux would write
    /// (`status.lastScanResult`, `status.latestRef`) as JSON. Credentials:
    /// `--docker-config FILE` (a `.dockerconfigjson`, as the ImageRepository's secretRef
    /// holds), or `CAPSTAN_REGISTRY_USERNAME`/`CAPSTAN_REGISTRY_PASSWORD`, or
    /// `CAPSTAN_REGISTRY_TOKEN`. `spec.insecure: true` scans over plain HTTP.
    Scan {
        /// A YAML file holding the ImageRepository.
        #[arg(long)]
        repository: PathBuf,
        /// YAML files holding ImagePolicies (those referring to the repository are used).
        #[arg(long)]
        policy: Vec<PathBuf>,
        /// A `.dockerconfigjson` file with the registry's credentials.
        #[arg(long = "docker-config")]
        docker_config: Option<PathBuf>,
        /// Tags per page (the registry's `n`).
        #[arg(long = "page-size", default_value_t = capstan_source::TAG_PAGE_SIZE)]
        page_size: usize,
    },
}

pub fn run(cmd: ImageCommand) -> Result<u8, String> {
    match cmd {
        ImageCommand::Select { policy, tags, name } => select(&policy, &tags, name.as_deref()),
        ImageCommand::SetImages {
            path,
            latest,
            dry_run,
        } => set_images(&path, &latest, dry_run),
        ImageCommand::Scan {
            repository,
            policy,
            docker_config,
            page_size,
        } => scan(&repository, &policy, docker_config.as_deref(), page_size),
    }
}

fn registry_auth(docker_config: Option<&Path>) -> Result<Option<capstan_source::HttpAuth>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut auth = capstan_source::HttpAuth::default();
    if let Some(p) = docker_config {
        auth.docker_config_json =
            Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?);
    } else if let Some(t) = env("CAPSTAN_REGISTRY_TOKEN") {
        auth.bearer_token = Some(t);
    } else if let Some(u) = env("CAPSTAN_REGISTRY_USERNAME") {
        auth.username = Some(u);
        auth.password = Some(
            env("CAPSTAN_REGISTRY_PASSWORD")
                .ok_or("CAPSTAN_REGISTRY_USERNAME is set but CAPSTAN_REGISTRY_PASSWORD is not")?,
        );
    } else {
        return Ok(None);
    }
    Ok(Some(auth))
}

/// The registry, through capstan-source's OCI client, behind capstan-image's traits.
struct Registry<'a> {
    rt: &'a tokio::runtime::Runtime,
    auth: Option<capstan_source::HttpAuth>,
    page_size: usize,
    insecure: bool,
}

impl capstan_image::TagLister for Registry<'_> {
    fn list_tags(&self, repo: &capstan_image::ImageRepository) -> Result<Vec<String>, String> {
        self.rt
            .block_on(capstan_source::list_image_tags(
                &format!("ImageRepository {}", repo.key),
                &repo.image,
                repo.insecure,
                self.auth.as_ref(),
                self.page_size,
            ))
            .map_err(|e| e.to_string())
    }
}

impl capstan_image::DigestLookup for Registry<'_> {
    fn digest(&self, image: &str, tag: &str) -> Result<String, String> {
        self.rt
            .block_on(capstan_source::image_tag_digest(
                image,
                image,
                tag,
                self.insecure,
                self.auth.as_ref(),
            ))
            .map_err(|e| e.to_string())
    }
}

fn read_docs(path: &Path) -> Result<(String, Vec<capstan_yaml::Node>), String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let docs = capstan_yaml::parse_documents(&text, &file).map_err(|e| e.to_string())?;
    Ok((file, docs))
}

fn scan(
    repository: &Path,
    policies: &[PathBuf],
    docker_config: Option<&Path>,
    page_size: usize,
) -> Result<u8, String> {
    let (file, docs) = read_docs(repository)?;
    let repos: Vec<_> = docs
        .iter()
        .filter(|d| d.str_at(&["kind"]) == Some("ImageRepository"))
        .map(|d| capstan_image::ImageRepository::from_node(d, &file))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let [repo] = repos.as_slice() else {
        return Err(format!(
            "{file}: expected one ImageRepository, found {}",
            repos.len()
        ));
    };
    let mut selected = Vec::new();
    for p in policies {
        let (pfile, pdocs) = read_docs(p)?;
        for d in pdocs
            .iter()
            .filter(|d| d.str_at(&["kind"]) == Some("ImagePolicy"))
        {
            let pol =
                capstan_image::ImagePolicy::from_node(d, &pfile).map_err(|e| e.to_string())?;
            if pol.repository == repo.key {
                let compiled = pol.compile().map_err(|e| {
                    e.context(format!("{pfile}: ImagePolicy {}", pol.key))
                        .to_string()
                })?;
                selected.push((pfile.clone(), pol, compiled));
            }
        }
    }
    let rt = crate::runtime()?;
    let registry = Registry {
        rt: &rt,
        auth: registry_auth(docker_config)?,
        page_size,
        insecure: repo.insecure,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let scan_time =
        crate::ops::rfc3339_nano(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now));
    let (tags, result) =
        capstan_image::scan(repo, &registry, &scan_time).map_err(|e| e.to_string())?;
    let mut failed = false;
    let mut out_policies = Vec::new();
    for (pfile, pol, compiled) in &selected {
        let mut status = capstan_image::PolicyStatus::default();
        let picked = compiled
            .select(&tags)
            .and_then(|tag| status.update(&repo.image, &tag, pol.digest_reflection, &registry));
        match picked {
            Ok(()) => out_policies.push(serde_json::json!({
                "name": pol.key.to_string(),
                "status": status.to_json(),
                "message": status.ready_message(),
            })),
            Err(e) => {
                failed = true;
                let message = e.message.clone();
                eprintln!(
                    "error: {}",
                    e.or_context(format!("{pfile}: ImagePolicy {}", pol.key))
                );
                out_policies.push(serde_json::json!({
                    "name": pol.key.to_string(),
                    "error": message,
                }));
            }
        }
    }
    let out = serde_json::json!({
        "imageRepository": {
            "name": repo.key.to_string(),
            "status": capstan_image::repository_status(repo, &result),
            "message": result.ready_message(),
        },
        "imagePolicies": out_policies,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(if failed { crate::EXIT_FAILURE } else { 0 })
}

fn read_tags(path: &Path) -> Result<Vec<String>, String> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read tags from stdin: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn pick_policy(
    policies: Vec<ImagePolicy>,
    file: &str,
    name: Option<&str>,
) -> Result<ImagePolicy, String> {
    let wanted: Vec<ImagePolicy> = match name {
        None => policies,
        Some(n) => policies
            .into_iter()
            .filter(|p| match n.split_once('/') {
                Some((ns, nm)) => p.key.namespace == ns && p.key.name == nm,
                None => p.key.name == n,
            })
            .collect(),
    };
    match wanted.len() {
        1 => Ok(wanted.into_iter().next().unwrap_or_else(|| unreachable!())),
        0 => Err(match name {
            Some(n) => format!("{file}: no ImagePolicy named {n}"),
            None => format!("{file}: no ImagePolicy (kind: ImagePolicy, apiVersion: image.toolkit.fluxcd.io/v1)"),
        }),
        _ => Err(format!(
            "{file}: several ImagePolicies ({}); choose one with --name",
            wanted
                .iter()
                .map(|p| p.key.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn select(policy: &Path, tags: &Path, name: Option<&str>) -> Result<u8, String> {
    let file = policy.display().to_string();
    let text = std::fs::read_to_string(policy).map_err(|e| format!("cannot read {file}: {e}"))?;
    let policies = capstan_image::image_policies(&text, &file).map_err(|e| e.to_string())?;
    let p = pick_policy(policies, &file, name)?;
    let compiled = p.compile().map_err(|e| {
        e.context(format!("{file}: ImagePolicy {}", p.key))
            .to_string()
    })?;
    let tags = read_tags(tags)?;
    let tag = compiled.select(&tags).map_err(|e| {
        e.or_context(format!("{file}: ImagePolicy {}", p.key))
            .to_string()
    })?;
    println!("{tag}");
    Ok(0)
}

/// `NS/NAME=IMAGE:TAG[@DIGEST]`.
fn parse_latest(s: &str) -> Result<(ObjectKey, ImageRef), String> {
    let bad = || format!("--latest {s:?}: expected NAMESPACE/NAME=IMAGE:TAG[@DIGEST]");
    let (key, r) = s.split_once('=').ok_or_else(bad)?;
    let (ns, name) = key.split_once('/').ok_or_else(bad)?;
    let (r, digest) = match r.split_once('@') {
        Some((a, d)) => (a, d),
        None => (r, ""),
    };
    // the tag follows the last ':' after the last '/'
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    let colon = r[slash..].rfind(':').map(|i| slash + i).ok_or_else(bad)?;
    let (image, tag) = (&r[..colon], &r[colon + 1..]);
    if ns.is_empty() || name.is_empty() || image.is_empty() || tag.is_empty() {
        return Err(bad());
    }
    Ok((
        ObjectKey {
            namespace: ns.into(),
            name: name.into(),
        },
        ImageRef {
            name: image.into(),
            tag: tag.into(),
            digest: digest.into(),
        },
    ))
}

fn yaml_files(root: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err(format!("{}: directories nested too deeply", root.display()));
    }
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    if meta.is_file() {
        out.push(root.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(()); // symlinks are not followed
    }
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let p = e.path();
        let ft = e
            .file_type()
            .map_err(|err| format!("{}: {err}", p.display()))?;
        if ft.is_dir() {
            yaml_files(&p, out, depth + 1)?;
        } else if ft.is_file()
            && (name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization")
        {
            out.push(p);
        }
    }
    Ok(())
}

fn set_images(path: &Path, latest: &[String], dry_run: bool) -> Result<u8, String> {
    let mut refs = BTreeMap::new();
    for l in latest {
        let (k, r) = parse_latest(l)?;
        refs.insert(k, r);
    }
    let mut files = Vec::new();
    yaml_files(path, &mut files, 0)?;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue; // not UTF-8: not a YAML file we rewrite
        };
        let out = capstan_image::apply_setters(&text, &refs);
        if out.changes.is_empty() {
            continue;
        }
        for c in &out.changes {
            println!(
                "{}:{}: {} -> {} ({})",
                f.display(),
                c.line,
                c.old,
                c.new,
                c.setter
            );
        }
        if !dry_run {
            std::fs::write(&f, out.text)
                .map_err(|e| format!("cannot write {}: {e}", f.display()))?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_flag_parses_registry_ports_and_digests() {
        let (k, r) = parse_latest("apps/app=localhost:5000/team/app:v1@sha256:ab").unwrap();
        assert_eq!(k.to_string(), "apps/app");
        assert_eq!(r.name, "localhost:5000/team/app");
        assert_eq!(r.tag, "v1");
        assert_eq!(r.digest, "sha256:ab");
        assert!(parse_latest("apps/app=localhost:5000/team/app").is_err());
        assert!(parse_latest("app=r/a:1").is_err());
    }
}
