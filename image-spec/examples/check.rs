//! `cargo run -p cvm-image-spec --example check -- SPEC.toml...`: print every problem of each spec
//! (`file:line: key: message`), exit 1 if any.

fn main() {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        match cvm_image_spec::ImageSpec::load(std::path::Path::new(&arg)) {
            Ok(spec) => println!("{arg}: ok ({} shapes)", spec.shapes.len()),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
