//! Semantic rules beyond the types: every problem is collected, none stops the check.

use crate::diagnostic::{path, Diagnostic, KeyPath, Origin};
use crate::memory::{Memory, MIB, TIB};
use crate::schema::*;
use crate::{cmdline, ImageSpec};

/// Collects diagnostics against an origin (file + line map).
struct Check<'a> {
    origin: &'a Origin,
    out: Vec<Diagnostic>,
}

impl Check<'_> {
    fn err(&mut self, key: KeyPath, message: impl Into<String>) {
        self.out.push(self.origin.diagnostic(key, message.into()));
    }

    fn name(&mut self, key: KeyPath, s: &str) {
        let ok = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            self.err(
                key,
                format!("{s:?} is not a name: use [a-z0-9][a-z0-9._-]*"),
            );
        }
    }

    fn non_blank(&mut self, key: KeyPath, s: &str) {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            self.err(
                key,
                format!("{s:?} must be non-empty and contain no whitespace"),
            );
        }
    }

    fn sha256(&mut self, key: KeyPath, s: &str) {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            self.err(
                key,
                format!("{s:?} is not a sha256: expected 64 lowercase hex digits"),
            );
        }
    }

    fn repo_path(&mut self, key: KeyPath, p: &RepoPath) {
        if let Some(problem) = p.problem() {
            self.err(key, format!("{:?}: {problem}", p.as_str()));
        }
    }

    /// Report each entry of a list that repeats an earlier one, shown by `show`.
    fn no_repeats<T: PartialEq>(
        &mut self,
        key: &KeyPath,
        items: &[T],
        show: impl Fn(&T) -> String,
    ) {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                self.err(key.index(i), format!("{} is listed twice", show(item)));
            }
        }
    }

    fn size(&mut self, key: KeyPath, m: Memory, min: Memory, max: Memory) {
        if !m.0.is_multiple_of(MIB) {
            self.err(key, format!("{m} is not a whole number of MiB"));
        } else if m < min || m > max {
            self.err(key, format!("{m} is outside {min}..={max}"));
        }
    }
}

pub(crate) fn validate(spec: &ImageSpec, origin: &Origin) -> Vec<Diagnostic> {
    let mut c = Check {
        origin,
        out: Vec::new(),
    };
    image(&mut c, spec);
    for (i, s) in spec.shapes.iter().enumerate() {
        shape(&mut c, spec, path(&["shape"]).index(i), s);
    }
    for (i, s) in spec.shapes.iter().enumerate() {
        if spec.shapes[..i].iter().any(|t| t.name == s.name) {
            c.err(
                path(&["shape"]).index(i).key("name"),
                format!("duplicate shape name {:?}", s.name),
            );
        }
    }
    kernel(&mut c, &spec.kernel);
    firmware(&mut c, spec);
    rootfs(&mut c, &spec.rootfs);
    if let Some(i) = &spec.initdata {
        c.repo_path(path(&["initdata", "file"]), &i.file);
    }
    match &spec.signing {
        Some(s) => c.repo_path(path(&["signing", "key"]), &s.key),
        None if !spec.image.test_image => c.err(
            path(&["signing"]),
            "a production image (test_image = false) must be signed: add [signing]",
        ),
        None => {}
    }
    if let Some(p) = &spec.publish {
        publish(&mut c, p);
    }
    c.out
}

fn image(c: &mut Check, spec: &ImageSpec) {
    let im = &spec.image;
    c.name(path(&["image", "name"]), &im.name);
    c.non_blank(path(&["image", "version"]), &im.version);
    let tees = path(&["image", "tees"]);
    if im.tees.is_empty() {
        c.err(
            tees.clone(),
            "no TEE listed: add at least one of \"tdx\", \"snp\", \"vtpm\"",
        );
    }
    c.no_repeats(&tees, &im.tees, |t| format!("{:?}", t.as_str()));
    for (i, t) in im.tees.iter().enumerate() {
        if *t == Tee::Mock && !im.test_image {
            c.err(
                tees.index(i),
                "the mock TEE is allowed only in a test image (test_image = true)",
            );
        }
    }
    if spec.shapes.is_empty() {
        c.err(
            path(&["shape"]),
            "no [[shape]]: measurements need at least one VM shape",
        );
    }
}

fn shape(c: &mut Check, spec: &ImageSpec, at: KeyPath, s: &Shape) {
    let tees = &spec.image.tees;
    c.name(at.key("name"), &s.name);
    if s.vcpus.0.is_empty() {
        c.err(at.key("vcpus"), "empty vCPU list");
    }
    for (i, &n) in s.vcpus.0.iter().enumerate() {
        if !(1..=512).contains(&n) {
            c.err(
                at.key("vcpus").index(i),
                format!("{n} vCPUs is outside 1..=512"),
            );
        }
    }
    c.no_repeats(&at.key("vcpus"), &s.vcpus.0, u32::to_string);
    c.size(
        at.key("memory"),
        s.memory,
        Memory(128 * MIB),
        Memory(16 * TIB),
    );
    match (&s.cpu, s.cpu_signature) {
        (Some(_), Some(_)) => c.err(at.key("cpu_signature"), "give `cpu` or `cpu_signature`, not both"),
        (None, None) if tees.contains(&Tee::Snp) => {
            c.err(at.key("cpu"), "SNP measurements need the vCPU model: set `cpu` (e.g. \"EPYC-Milan\") or `cpu_signature`")
        }
        (Some(cpu), None) if tees.contains(&Tee::Snp) && s.vcpu_signature().is_none() => {
            let known: Vec<&str> = CPU_MODELS.iter().map(|(m, _)| *m).collect();
            c.err(at.key("cpu"), format!("unknown CPU model {cpu:?} for SNP (known: {})", known.join(", ")))
        }
        (Some(cpu), None) => c.non_blank(at.key("cpu"), cpu),
        _ => {}
    }
    match (s.vmm, &s.qemu_version) {
        (Vmm::Qemu, None) => c.err(
            at.key("qemu_version"),
            "vmm = \"qemu\" needs qemu_version (e.g. \"10.0\")",
        ),
        (Vmm::Qemu, Some(v)) => {
            let parts: Vec<&str> = v.split('.').collect();
            if !(2..=3).contains(&parts.len())
                || parts
                    .iter()
                    .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                c.err(
                    at.key("qemu_version"),
                    format!("{v:?} is not a QEMU version: expected MAJOR.MINOR like \"10.0\""),
                );
            }
        }
        (_, Some(_)) => c.err(
            at.key("qemu_version"),
            "qemu_version applies only to vmm = \"qemu\"",
        ),
        (_, None) => {}
    }
    c.name(at.key("machine"), &s.machine);
    for (i, f) in s.machine_flags.iter().enumerate() {
        if f.is_empty() || f.contains([',', ' ']) || !f.contains('=') {
            c.err(
                at.key("machine_flags").index(i),
                format!("{f:?}: one `key=value` per entry, no commas or spaces"),
            );
        } else if f.starts_with("accel=") || f.starts_with("confidential-guest-support=") {
            // The ACPI capture runs the shape under TCG without a TDX object; the launch adds
            // both itself.
            c.err(
                at.key("machine_flags").index(i),
                format!("{f:?}: the accelerator and the confidential-guest object are not part of a shape"),
            );
        }
    }
    if tees.contains(&Tee::Tdx)
        && s.machine != "q35"
        && !s.machine.strip_prefix("pc-q35-").is_some_and(|v| !v.is_empty())
    {
        c.err(
            at.key("machine"),
            format!("{:?}: TDX shapes are modelled on q35 (\"q35\" or \"pc-q35-X.Y\")", s.machine),
        );
    }
    if tees.contains(&Tee::Snp) {
        if s.guest_features & 1 == 0 {
            c.err(
                at.key("guest_features"),
                format!("{:#x}: bit 0 (SNPActive) must be set", s.guest_features),
            );
        }
        if s.snp_policy & (1 << 17) == 0 {
            c.err(
                at.key("snp_policy"),
                format!("{:#x}: bit 17 is reserved and must be 1", s.snp_policy),
            );
        }
        if s.snp_policy & (1 << 19) != 0 && !spec.image.test_image {
            c.err(
                at.key("snp_policy"),
                format!(
                    "{:#x}: the debug bit (19) is allowed only in a test image",
                    s.snp_policy
                ),
            );
        }
    }
    if s.tdx_page_order.is_some() && !tees.contains(&Tee::Tdx) {
        c.err(
            at.key("tdx_page_order"),
            "tdx_page_order is set but \"tdx\" is not in [image].tees",
        );
    }
}

fn kernel(c: &mut Check, k: &Kernel) {
    let src = path(&["kernel", "source"]);
    c.non_blank(src.key("package"), &k.source.package);
    c.non_blank(src.key("version"), &k.source.version);
    c.sha256(src.key("sha256"), &k.source.sha256);
    let frags = path(&["kernel", "fragments"]);
    if k.fragments.is_empty() {
        c.err(
            frags.clone(),
            "no config fragments: list at least kernel-config/fragments/base.config",
        );
    }
    for (i, f) in k.fragments.iter().enumerate() {
        let at = frags.index(i);
        if f.problem().is_some() {
            c.repo_path(at, f);
        } else if !f.as_str().starts_with("kernel-config/") || !f.as_str().ends_with(".config") {
            c.err(
                at,
                format!(
                    "{:?}: fragments are kernel-config/**/*.config files",
                    f.as_str()
                ),
            );
        }
    }
    c.no_repeats(&frags, &k.fragments, |f| format!("{:?}", f.as_str()));
    if let Err(e) = cmdline::check(&k.cmdline) {
        c.err(path(&["kernel", "cmdline"]), e.to_string());
    }
}

fn firmware(c: &mut Check, spec: &ImageSpec) {
    let fw = &spec.firmware;
    let src = path(&["firmware", "source"]);
    c.non_blank(src.key("package"), &fw.source.package);
    c.non_blank(src.key("version"), &fw.source.version);
    c.sha256(src.key("orig_sha256"), &fw.source.orig_sha256);
    c.sha256(src.key("debian_sha256"), &fw.source.debian_sha256);
    if let Some(d) = &fw.source.dsc_sha256 {
        c.sha256(src.key("dsc_sha256"), d);
    }
    let variants = path(&["firmware", "variants"]);
    c.no_repeats(&variants, &fw.variants, |v| format!("{:?}", v.as_str()));
    if !fw.tdx_event_model.is_auto() && !spec.image.tees.contains(&Tee::Tdx) {
        c.err(
            path(&["firmware", "tdx_event_model"]),
            "tdx_event_model is set but \"tdx\" is not in [image].tees",
        );
    }
    for t in &spec.image.tees {
        if let Some(v) = FirmwareVariant::for_tee(*t) {
            if !fw.variants.contains(&v) {
                c.err(
                    variants.clone(),
                    format!(
                        "TEE {:?} boots the {:?} firmware: add it",
                        t.as_str(),
                        v.as_str()
                    ),
                );
            }
        }
    }
}

fn rootfs(c: &mut Check, r: &Rootfs) {
    let at = path(&["rootfs"]);
    c.name(at.key("suite"), &r.suite);
    for (i, p) in r.packages.iter().enumerate() {
        let ok = p.len() >= 2
            && p.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !ok {
            c.err(
                at.key("packages").index(i),
                format!("{p:?} is not a Debian package name"),
            );
        }
    }
    c.no_repeats(&at.key("packages"), &r.packages, |p| format!("{p:?}"));
    if let Agent::Crate(name) = &r.agent {
        c.name(at.key("agent"), name);
    }
    for (i, f) in r.extra_files.iter().enumerate() {
        let e = at.key("extra_files").index(i);
        c.repo_path(e.key("source"), &f.source);
        let d = &f.destination;
        if !d.starts_with('/') || d.ends_with('/') || d.split('/').any(|s| s == ".." || s == ".") {
            c.err(
                e.key("destination"),
                format!("{d:?} must be an absolute file path in the guest, without `.` or `..`"),
            );
        }
        if f.mode > 0o7777 {
            c.err(
                e.key("mode"),
                format!("{:#o} is not a permission mode (write it as 0o644)", f.mode),
            );
        }
    }
    c.size(at.key("size_limit"), r.size_limit, Memory(MIB), Memory(TIB));
}

fn publish(c: &mut Check, p: &Publish) {
    if let Some(u) = &p.rvps_url {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        if rest.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            c.err(
                path(&["publish", "rvps_url"]),
                format!("{u:?} is not an http:// or https:// URL"),
            );
        }
    }
    if let Some(r) = &p.oci {
        // Drop `@digest`, then a `:tag` after the last `/` (a registry port comes before it).
        let name = r.split('@').next().unwrap_or_default();
        let repo = match name.rfind('/') {
            Some(slash) => name[slash..]
                .find(':')
                .map_or(name, |colon| &name[..slash + colon]),
            None => name,
        };
        let ok = !r.contains("://")
            && !r.contains(char::is_whitespace)
            && repo.contains('/')
            && !repo.split('/').any(str::is_empty)
            && !r
                .split('/')
                .skip(1)
                .any(|s| s.chars().any(|ch| ch.is_ascii_uppercase()));
        if !ok {
            c.err(
                path(&["publish", "oci"]),
                format!("{r:?} is not an OCI reference like registry.example/guest/image:tag"),
            );
        }
    }
}
