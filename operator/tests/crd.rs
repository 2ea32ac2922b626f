//! The committed CRD is a valid Kubernetes object (checked with `kubernetes-validate`, which
//! `scripts/test.sh` installs from PyPI).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_crd_validates_against_the_kubernetes_schemas() {
    let crd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/honeycomb.yaml");
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.30.0"])
        .arg(&crd)
        .output()
        .expect("kubernetes-validate must be installed (scripts/test.sh installs it)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "kubernetes-validate: {report}");
    assert!(
        report.contains("passed for resource customresourcedefinition/honeycombs.bichito.dev"),
        "{report}"
    );
}
