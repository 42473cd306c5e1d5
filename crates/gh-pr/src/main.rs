//! `gh-pr`: a thin `main` over [`gh_pr::main`].

fn main() -> std::process::ExitCode {
    gh_pr::main()
}
