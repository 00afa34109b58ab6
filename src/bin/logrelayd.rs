fn main() -> std::process::ExitCode {
    logrelay::daemon::main()
}
