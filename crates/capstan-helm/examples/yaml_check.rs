//! Dev tool: parses YAML files (values or rendered manifests) with capstan-helm's
//! go-yaml-compatible reader and reports failures. `yaml_check FILE...`
fn main() {
    let mut bad = 0;
    for f in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, doc) in capstan_helm::manifest::split_manifests(&text)
            .iter()
            .enumerate()
        {
            if let Err(e) = capstan_helm::yaml::parse(doc, capstan_helm::yaml::Numbers::Json) {
                bad += 1;
                println!("{f} doc {i}: {e}");
            }
        }
    }
    println!("{bad} failures");
}
