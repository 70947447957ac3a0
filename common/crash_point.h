#pragma once

// Named crash points: the manager's steps where a test may kill it, to check that a successor
// adopts the node from whatever state the kill left behind.
//
// SERVE_TEST_CRASH_AT=<name>[:<n>] makes the process SIGKILL itself the n-th time (default the
// first) it reaches the crash point <name> after armCrashPoints() was called; the manager arms
// them when its first deploy arrives, so a node's own start never trips them. Unset, a crash
// point costs one relaxed atomic load. This is a test hook, not an operator setting.
#include <string_view>

namespace serve {

// Starts counting: crash points reached before this call never fire.
void armCrashPoints();

// Kills the process (SIGKILL, after one log line naming the point) when the environment names
// this point and its count is reached.
void crashPoint(std::string_view name);

}  // namespace serve
