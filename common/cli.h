#pragma once

// Command lines, parsed with CLI11 (Debian's libcli11-dev) by every binary here: the value rules
// their flags share, and one way to run a parse. CLI11 reports usage errors as exceptions; they
// stop here, as a message that names the flag and the rule.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/config_keys.h"

namespace serve::cli {

// An integer in [lo, hi] in plain decimal: "8000", not " 8000", "+8000", "8e3", "0x1f" or "8.0".
// Add it with Option::transform, not check: it rewrites the value to plain decimal without
// leading zeros, so CLI11's own conversion (which reads "010" as octal) converts exactly the
// number that was checked. Applies to each element of a list option. hi = the largest int64_t:
// no upper bound.
CLI::Validator integerIn(int64_t lo, int64_t hi);

// A finite decimal number in [lo, hi] ("0.5", "3600"; not "nan", "inf" or "1s"); with
// `lo_open`, in (lo, hi]. hi = infinity: no upper bound.
CLI::Validator numberIn(double lo, double hi = std::numeric_limits<double>::infinity(),
                        bool lo_open = false);

// Seconds: numberIn's rule, and the number may end in "s" ("2", "0.5", "2s"). Add it with
// Option::transform: it drops the "s".
CLI::Validator secondsIn(double lo, double hi);

// A value of a row of common/config_keys.h (kInt or kNumber): checked against the row's range,
// and refused with the row's rule, in the words the config parser and the environment readers
// use ("expected an integer in [1, 4096], got '0'"). Add it with Option::transform: an integer
// is rewritten to plain decimal, as integerIn does.
CLI::Validator keyValue(const keys::Key& key);

// Any string but the empty one.
CLI::Validator nonEmpty();

// Makes `app` (one without subcommands) read its arguments strictly in order, as a loop over
// argv does: each option is checked, and its callback run, as soon as it is read; a repeated
// option takes its last value; -h/--help takes effect where it stands, so an error before it
// is reported and nothing after it is read. Call it once the options are added.
void readInOrder(CLI::App& app);

struct ParseResult {
  bool help = false;  // -h/--help: print app.help() and exit 0
  std::string error;  // the usage error; empty when the parse succeeded
  bool ok() const { return error.empty(); }
};

// Parses `args` (argv without argv[0]). "--flag=" gives --flag the empty value (CLI11 alone
// would take the next argument as its value). An argument no option or subcommand accepts is
// reported ("unknown flag '--x'", "unexpected argument 'x'") in place of an error found after
// it; without readInOrder CLI11 reads every argument before it checks any, so it always is.
ParseResult parse(CLI::App& app, std::vector<std::string> args);

}  // namespace serve::cli
