//! A scheduler with Berth's plugins and four of our own. It has every
//! `berth` command: `custom-scheduler run | simulate | bench`.

fn main() -> std::process::ExitCode {
    custom_scheduler::app().run()
}
