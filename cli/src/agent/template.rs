//! The agent's template language: minijinja with the settings every agent
//! template is compiled and rendered under.
//!
//! This file names nothing but `minijinja` (features `json`, `urlencode`,
//! `fuel`), because the fuzzer compiles it too
//! (`fuzz/fuzz_targets/agent_template.rs` includes it by path): what is
//! fuzzed is what the agent runs. The `secret()` function is added by
//! [`super::render::Renderer`].

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// How many template instructions one render may run. A configuration
/// file needs a few thousand; a template that loops (nearly) without end
/// stops with an error instead of pinning the agent's CPU.
pub const FUEL: u64 = 1_000_000;

/// A template environment with the agent's settings: undefined values are
/// errors (never an empty string in a file), nothing is escaped (a
/// destination ending in `.html` is still a plain file), a trailing
/// newline is kept, and every render has [`FUEL`].
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    env
}

#[cfg(test)]
mod tests {
    use minijinja::ErrorKind;

    use super::*;

    #[test]
    fn a_template_that_loops_nearly_forever_runs_out_of_fuel() {
        let env = environment();
        let endless = "{% for a in range(100000) %}{% for b in range(100000) %}\
                       {{ a }}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = env.render_str(endless, ()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfFuel);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn ordinary_templates_have_fuel_to_spare() {
        let env = environment();
        let text = env
            .render_str(
                "{% for i in range(10000) %}{{ i }}={{ i * 2 }}\n{% endfor %}",
                (),
            )
            .unwrap();
        assert_eq!(text.lines().count(), 10000);
    }
}
