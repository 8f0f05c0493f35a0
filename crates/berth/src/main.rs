//! `berth`: Berth's own scheduler, with the built-in plugins.

fn main() -> std::process::ExitCode {
    berth::cli::App::new().run()
}
