// Model files that must not be trusted: the real serve-replica on a table of malformed ones,
// each under a 2 GiB address-space limit (prlimit execs the replica, so the status is its own).
// Each must end the start with exit code 1 (never a signal) and the one line that names the
// path and the rule broken. Large files are sparse: they take no disk. The names do not start
// with "replica", so the sanitizer stage (scripts/sanitizers.sh) does not run these under an
// address-space limit ASan's shadow memory could never fit.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/manager_fixture.h"
#include "tests/integration/replica_fixture.h"
#include "tests/support/safetensors_writer.h"

#if defined(__SANITIZE_ADDRESS__)
#define SERVE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SERVE_TEST_ASAN 1
#endif
#endif

namespace serve::testing {
namespace {

const std::string kSourceDir = SERVE_SOURCE_DIR;
constexpr uint64_t kAddressSpaceLimit = uint64_t{2} << 30;  // 2 GiB
constexpr uint64_t kGiB = uint64_t{1} << 30;

#ifdef SERVE_TEST_ASAN
// ASan reserves terabytes of address space for its shadow memory: under a 2 GiB limit the
// replica could not start at all. The files are still refused; the cases that only a limit
// makes safe (a mapping or a copy too large for the machine) are skipped.
constexpr bool kWithLimit = false;
#else
constexpr bool kWithLimit = true;
#endif

// `head`, then holes up to `size` bytes.
std::string writeSparse(const TempDir& dir, const std::string& name, const std::string& head,
                        uint64_t size) {
  const std::string path = dir.write(name, "");
  std::ofstream(path, std::ios::binary) << head;
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);
  return path;
}

std::string lengthPrefix(uint64_t length) {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  }
  return out;
}

// One MLP layer whose weight is [1, in] F32 at bytes [0, 4·in) and whose bias follows it.
std::string bigLayerHeader(uint64_t in) {
  const uint64_t weight_end = 4 * in;
  return "{\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[1," + std::to_string(in) +
         "],\"data_offsets\":[0," + std::to_string(weight_end) +
         "]},\"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
         std::to_string(weight_end) + "," + std::to_string(weight_end + 4) + "]}}";
}

std::string modelConfig(const std::string& model) {
  return "applications:\n"
         "  - name: app\n"
         "    route_prefix: /m\n"
         "    deployments:\n"
         "      - {name: d, model: " +
         model + "}\n";
}

// The line serve-replica ends a failed start with ("serve-replica: <why>"); empty when none.
std::string failureLine(const std::string& output) {
  const std::string prefix = "serve-replica: ";
  for (size_t pos = 0; pos < output.size();) {
    size_t end = output.find('\n', pos);
    if (end == std::string::npos) {
      end = output.size();
    }
    if (output.compare(pos, prefix.size(), prefix) == 0) {
      return output.substr(pos, end - pos);
    }
    pos = end + 1;
  }
  return "";
}

struct Case {
  std::string name;
  std::string path;
  std::string message;       // after "serve-replica: model 'm': "
  bool needs_limit = false;  // only the address-space limit keeps it from the machine's memory
};

// Starts the replica on each case's model and checks that it refuses it: exited (not killed)
// with code 1, its last word naming the path and the rule, and no port ever bound.
void expectRefusals(const std::vector<Case>& cases, std::string (*model)(const std::string& path),
                    const std::map<std::string, std::string>& env = {}) {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    if (c.needs_limit && !kWithLimit) {
      MESSAGE("ASan build: no address-space limit, so '", c.name, "' is not run");
      continue;
    }
    ReplicaOptions o;
    o.config_yaml = modelConfig(model(c.path));
    o.pass_http_port = false;
    o.env = env;
    if (kWithLimit) {
      o.command_prefix = {"/usr/bin/prlimit", "--as=" + std::to_string(kAddressSpaceLimit), "--"};
    }
    ReplicaProcess r(o);
    CHECK_FALSE(r.start(std::chrono::seconds(30)));
    const std::optional<int> code = r.wait(std::chrono::seconds(10));
    const std::string out = r.output();
    INFO(out);
    REQUIRE(code.has_value());
    CHECK(*code == 1);  // -N would be a signal
    CHECK(failureLine(out) == "serve-replica: model 'm': " + c.message);
    CHECK(out.find("\"event\":\"ready\"") == std::string::npos);
  }
}

std::string mlpModel(const std::string& path) { return "{kind: mlp, name: m, path: " + path + "}"; }

std::string onnxModel(const std::string& path) {
  return "{kind: onnx, name: m, path: " + path + "}";
}

std::string pythonModel(const std::string& path) {
  return "{kind: python, name: m, import_path: \"hello:app\", working_dir: " + path + "}";
}

TEST_CASE("loaders: malformed safetensors files end the start with the path and the rule") {
  REQUIRE(::access("/usr/bin/prlimit", X_OK) == 0);
  TempDir dir;
  std::vector<Case> cases;

  const std::string huge_header =
      writeSparse(dir, "huge-header.safetensors", lengthPrefix(uint64_t{1} << 63), kGiB);
  cases.push_back({"header length 2^63 on a sparse file", huge_header,
                   huge_header + ": header length 9223372036854775808 runs past the end of the "
                                 "file (1073741824 bytes)"});

  const std::string past_end =
      dir.write("past-end.safetensors", lengthPrefix(1000) + std::string(92, ' '));
  cases.push_back({"header length larger than the file", past_end,
                   past_end + ": header length 1000 runs past the end of the file (100 bytes)"});

  const std::string long_header =
      writeSparse(dir, "long-header.safetensors", lengthPrefix(100'000'001), 200'000'000);
  cases.push_back({"header length over the 100 MB limit", long_header,
                   long_header + ": header length 100000001 exceeds the limit of 100000000 bytes"});

  // A valid header on 100 GB of holes whose first tensor claims 60 GB: the mapping alone is
  // larger than the limit allows.
  const uint64_t big_size = 100 * uint64_t{1'000'000'000};
  std::string big_header = bigLayerHeader(15'000'000'000);
  const std::string huge_tensor =
      writeSparse(dir, "huge-tensor.safetensors", makeSafetensors(big_header, ""), big_size);
  cases.push_back({"a 60 GB tensor in a 100 GB sparse file", huge_tensor,
                   huge_tensor + ": cannot map the safetensors file (100000000000 bytes): Cannot "
                                 "allocate memory",
                   true});

  // 1.2 GB maps under the limit, but copying its weights would need as much again.
  const uint64_t copy_in = 300'000'000;
  std::string copy_header = bigLayerHeader(copy_in);
  const std::string no_copy =
      writeSparse(dir, "no-room-to-copy.safetensors", makeSafetensors(copy_header, ""),
                  8 + copy_header.size() + 4 * copy_in + 4);
  cases.push_back({"a tensor that maps but cannot be copied", no_copy,
                   no_copy + ": not enough memory to load the model (the file is " +
                       std::to_string(8 + copy_header.size() + 4 * copy_in + 4) +
                       " bytes; an allocation failed under the address-space limit of " +
                       std::to_string(kAddressSpaceLimit) + " bytes)",
                   true});

  const std::string overflow = dir.write(
      "overflow.safetensors",
      makeSafetensors("{\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
                      "4],\"data_offsets\":[0,16]}}",
                      std::string(16, '\0')));
  cases.push_back({"shape product overflowing 2^64", overflow,
                   overflow + ": tensor 'layers.0.weight': data_offsets [0, 16) hold 16 bytes but "
                              "F32 shape [4294967296, 4294967296, 4] needs 2^64 bytes or more"});

  const std::string beyond = dir.write(
      "beyond.safetensors",
      makeSafetensors("{\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":"
                      "[0,4000]}}",
                      std::string(32, '\0')));
  cases.push_back({"data_offsets beyond the data section", beyond,
                   beyond + ": tensor 'layers.0.weight': data_offsets [0, 4000) exceed the data "
                            "section (32 bytes)"});

  const std::string empty = dir.write("empty.safetensors", "");
  cases.push_back({"empty file", empty,
                   empty + ": file is 0 bytes; a safetensors file starts with an 8-byte header "
                           "length"});

  const std::string directory = dir.path() + "/dir.safetensors";
  REQUIRE(::mkdir(directory.c_str(), 0700) == 0);
  cases.push_back(
      {"a directory", directory, directory + ": cannot read safetensors file: Is a directory"});

  const std::string fifo = dir.path() + "/fifo.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  cases.push_back(
      {"a FIFO nobody writes to", fifo, fifo + ": safetensors file is a FIFO, not a regular file"});

  const std::string whole =
      makeSafetensors({f32Tensor("layers.0.weight", {4, 2}, std::vector<float>(8, 0.5f)),
                       f32Tensor("layers.0.bias", {4}, std::vector<float>(4, 0.0f))});
  uint64_t header_length = 0;
  std::memcpy(&header_length, whole.data(), 8);
  const std::string truncated = dir.write("truncated.safetensors", whole.substr(0, 40));
  cases.push_back({"a truncated file", truncated,
                   truncated + ": header length " + std::to_string(header_length) +
                       " runs past the end of the file (40 bytes)"});

  const std::string missing = dir.path() + "/missing.safetensors";
  cases.push_back({"a missing file", missing,
                   missing + ": cannot open safetensors file: No such file or directory"});

  expectRefusals(cases, mlpModel);
}

// False, with a message CTest reads as "Skipped", when the worker's Python cannot import
// onnxruntime (scripts/setup.sh installs it into .tools/onnxruntime).
bool onnxRuntimeAvailable() {
  const auto [code, output] =
      runShell("PYTHONPATH='" + kSourceDir + "/python' " + SERVE_TEST_PYTHON +
               " -c 'from haproxy_serve import onnx; onnx.import_onnxruntime()' 2>&1");
  if (code != 0) {
    MESSAGE("!!!!! onnxruntime is not importable: this test is SKIPPED\n", output);
    return false;
  }
  return true;
}

TEST_CASE("loaders: malformed ONNX files end the start with the path and the problem") {
  if (!onnxRuntimeAvailable()) {
    return;
  }
  TempDir dir;
  std::string random_bytes(4096, '\0');
  uint32_t x = 12345;  // a fixed xorshift sequence: the same bytes on every run
  for (char& c : random_bytes) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  std::ifstream digits(kSourceDir + "/models/digits.onnx", std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(digits)),
                          std::istreambuf_iterator<char>());
  REQUIRE(whole.size() > 5000);
  const std::string random = dir.write("random.onnx", random_bytes);
  const std::string empty = dir.write("empty.onnx", "");
  const std::string truncated = dir.write("truncated.onnx", whole.substr(0, 5000));
  const std::string directory = dir.path() + "/dir.onnx";
  REQUIRE(::mkdir(directory.c_str(), 0700) == 0);
  const std::string fifo = dir.path() + "/fifo.onnx";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string big = writeSparse(dir, "big.onnx", "", 3 * kGiB);
  const std::string prefix = "haproxy_serve.onnx:build_app: ";
  const std::string protobuf = " cannot be loaded: [ONNXRuntimeError] : 7 : INVALID_PROTOBUF : ";
  expectRefusals(
      {
          {"random bytes", random,
           prefix + "ValueError: ONNX model " + random + protobuf + "Load model from " + random +
               " failed:Protobuf parsing failed."},
          {"empty file", empty,
           prefix + "ValueError: ONNX model " + empty + ": is empty (0 bytes)"},
          {"truncated digits.onnx", truncated,
           prefix + "ValueError: ONNX model " + truncated + protobuf + "Load model from " +
               truncated + " failed:Protobuf parsing failed."},
          {"a directory", directory,
           prefix + "ValueError: ONNX model " + directory + ": is a directory, not a file"},
          {"a FIFO", fifo, prefix + "ValueError: ONNX model " + fifo + ": is not a regular file"},
          {"over protobuf's limit", big,
           prefix + "ValueError: ONNX model " + big +
               ": is 3221225472 bytes; an ONNX graph file is at most 2147483647 bytes "
               "(protobuf's limit; larger models keep their weights in external data files)"},
      },
      onnxModel, {{"SERVE_PYTHON", SERVE_TEST_PYTHON}});
}

TEST_CASE("loaders: a working_dir that is missing or a file ends the start, naming it") {
  TempDir dir;
  const std::string missing = dir.path() + "/missing";
  const std::string file = dir.write("file", "not a directory");
  std::vector<Case> cases = {
      {"missing", missing,
       "model.working_dir " + missing + " cannot be used: No such file or directory"},
      {"a file", file, "model.working_dir " + file + " is a regular file, not a directory"},
  };
  if (::geteuid() != 0) {
    const std::string locked = dir.path() + "/locked";
    REQUIRE(::mkdir(locked.c_str(), 0) == 0);
    cases.push_back(
        {"not enterable", locked,
         "model.working_dir " + locked + " cannot be entered and listed: Permission denied"});
  } else {
    MESSAGE("running as root, who may enter any directory: the unreadable case is not run");
  }
  expectRefusals(cases, pythonModel, {{"SERVE_PYTHON", SERVE_TEST_PYTHON}});
}

}  // namespace
}  // namespace serve::testing
