fn main() -> std::process::ExitCode {
    logrelay::cli::main()
}
