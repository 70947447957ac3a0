#include "replica/runtime/safetensors.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "tests/support/safetensors_writer.h"

namespace serve {
namespace {

using testing::f32Tensor;
using testing::makeSafetensors;
using testing::TestTensor;

constexpr const char* kSource = "m.safetensors";

std::string parseError(const std::string& bytes) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::parse(bytes, kSource);
  return file.ok() ? std::string("(parsed)") : messageOf(file.status());
}

// One tensor "x" with the given entry JSON over `data_size` zero bytes.
std::string oneEntry(const std::string& entry, size_t data_size = 8) {
  return makeSafetensors(R"({"x":)" + entry + "}", std::string(data_size, '\0'));
}

std::string lengthPrefix(uint64_t length) {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  }
  return out;
}

std::vector<uint8_t> asBytes(std::span<const std::byte> span) {
  std::vector<uint8_t> out(span.size());
  std::memcpy(out.data(), span.data(), span.size());
  return out;
}

TEST_CASE("SafetensorsFile::parse reads tensors, offsets and metadata") {
  TestTensor u8{"flags", "U8", {3}, std::string("\x01\x02\x03", 3)};
  const std::string bytes = makeSafetensors({f32Tensor("w", {2, 2}, {1.0f, -2.5f, 3.25f, 0.0f}), u8,
                                             f32Tensor("b", {2}, {0.5f, -0.125f})},
                                            {{"format", "pt"}, {"note", "hello"}});
  StatusOr<SafetensorsFile> file = SafetensorsFile::parse(bytes, kSource);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  CHECK(file->source() == kSource);
  CHECK(file->metadata() ==
        std::map<std::string, std::string>{{"format", "pt"}, {"note", "hello"}});
  REQUIRE(file->tensors().size() == 3);

  const SafetensorsTensor& w = file->tensors().at("w");
  CHECK(w.name == "w");
  CHECK(w.dtype == "F32");
  CHECK(w.shape == std::vector<int64_t>{2, 2});
  CHECK(w.begin == 0);
  CHECK(w.end == 16);
  const SafetensorsTensor& flags = file->tensors().at("flags");
  CHECK(flags.dtype == "U8");
  CHECK(flags.begin == 16);
  CHECK(flags.end == 19);
  CHECK(asBytes(file->bytes(flags)) == std::vector<uint8_t>{1, 2, 3});
  const SafetensorsTensor& b = file->tensors().at("b");
  CHECK(b.begin == 19);  // deliberately unaligned: floats() must copy, not reinterpret
  CHECK(b.end == 27);

  StatusOr<std::vector<float>> wv = file->floats("w");
  REQUIRE(wv.ok());
  CHECK(*wv == std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f});
  StatusOr<std::vector<float>> bv = file->floats("b");
  REQUIRE(bv.ok());
  CHECK(*bv == std::vector<float>{0.5f, -0.125f});
}

TEST_CASE("SafetensorsFile::parse accepts scalars, empty tensors and no metadata") {
  const std::string bytes =
      makeSafetensors({f32Tensor("scalar", {}, {7.0f}), f32Tensor("empty", {0, 5}, {}),
                       f32Tensor("after", {1}, {8.0f})});
  StatusOr<SafetensorsFile> file = SafetensorsFile::parse(bytes, kSource);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  CHECK(file->metadata().empty());
  CHECK(file->tensors().at("scalar").shape.empty());
  CHECK(*file->floats("scalar") == std::vector<float>{7.0f});
  CHECK(file->floats("empty")->empty());
  CHECK(file->bytes(file->tensors().at("empty")).empty());
  CHECK(*file->floats("after") == std::vector<float>{8.0f});

  // An empty range holds no bytes, so it overlaps nothing even inside another tensor's range.
  const std::string inside =
      makeSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                      std::string(8, '\0'));
  CHECK(parseError(inside) == "(parsed)");
}

TEST_CASE("SafetensorsFile::parse knows every dtype's element size") {
  struct Case {
    std::string dtype;
    size_t size;
  };
  const std::vector<Case> cases = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"U16", 2}, {"I16", 2}, {"F16", 2}, {"BF16", 2},
      {"U32", 4},  {"I32", 4}, {"F32", 4}, {"U64", 8}, {"I64", 8}, {"F64", 8},
  };
  for (const Case& c : cases) {
    CAPTURE(c.dtype);
    TestTensor exact{"t", c.dtype, {3}, std::string(3 * c.size, '\0')};
    StatusOr<SafetensorsFile> file = SafetensorsFile::parse(makeSafetensors({exact}), kSource);
    REQUIRE_MESSAGE(file.ok(), file.status().message());
    CHECK(file->tensors().at("t").dtype == c.dtype);
    CHECK(file->bytes(file->tensors().at("t")).size() == 3 * c.size);

    TestTensor longer{"t", c.dtype, {3}, std::string(3 * c.size + 1, '\0')};
    CHECK(parseError(makeSafetensors({longer})) ==
          std::string(kSource) + ": tensor 't': data_offsets [0, " +
              std::to_string(3 * c.size + 1) + ") hold " + std::to_string(3 * c.size + 1) +
              " bytes but " + c.dtype + " shape [3] needs " + std::to_string(3 * c.size) +
              " bytes");
  }
}

TEST_CASE("SafetensorsFile::parse refuses malformed files, naming the source and tensor") {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string dtypes =
      "(expected one of BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64)";
  const std::string shape_rule = "shape must be an array of non-negative integers";
  const std::string offsets_rule = "data_offsets must be [begin, end], two non-negative integers";
  struct Case {
    std::string name;
    std::string bytes;
    std::string message;  // after "m.safetensors: "
  };
  const std::vector<Case> cases = {
      {"empty file", "", "file is 0 bytes; a safetensors file starts with an 8-byte header length"},
      {"7 bytes", std::string(7, '\0'),
       "file is 7 bytes; a safetensors file starts with an 8-byte header length"},
      {"header length past the end", lengthPrefix(100) + "{}",
       "header length 100 runs past the end of the file (10 bytes)"},
      {"header length one past the end", lengthPrefix(3) + "{}",
       "header length 3 runs past the end of the file (10 bytes)"},
      {"header length 2^64-1", lengthPrefix(std::numeric_limits<uint64_t>::max()) + "{}",
       "header length 18446744073709551615 runs past the end of the file (10 bytes)"},
      {"empty header", makeSafetensors("", ""), "header is not valid JSON: Empty: no JSON found"},
      {"text after the object", makeSafetensors("{} x", ""),
       "header is not valid JSON: The JSON document has an improper structure: missing or "
       "superfluous commas, braces, missing keys, etc."},
      {"truncated JSON", makeSafetensors("{\"x\":", ""),
       "header is not valid JSON: The JSON document has an improper structure: missing or "
       "superfluous commas, braces, missing keys, etc."},
      {"header is an array", makeSafetensors("[]", ""), "header is not a JSON object"},
      {"header is a string", makeSafetensors("\"x\"", ""), "header is not a JSON object"},
      {"entry is an array", oneEntry("[1]"), "tensor 'x': entry is not a JSON object"},
      {"dtype missing", oneEntry(R"({"shape":[2],"data_offsets":[0,8]})"),
       "tensor 'x': dtype is missing"},
      {"dtype not a string", oneEntry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"),
       "tensor 'x': dtype is not a string"},
      {"dtype unknown", oneEntry(R"({"dtype":"F8","shape":[2],"data_offsets":[0,8]})"),
       "tensor 'x': dtype 'F8' is not supported " + dtypes},
      {"dtype lower case", oneEntry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"),
       "tensor 'x': dtype 'f32' is not supported " + dtypes},
      {"shape missing", oneEntry(R"({"dtype":"F32","data_offsets":[0,8]})"),
       "tensor 'x': shape is missing"},
      {"shape not an array", oneEntry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"),
       "tensor 'x': " + shape_rule},
      {"shape negative", oneEntry(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
       "tensor 'x': " + shape_rule},
      {"shape float", oneEntry(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"),
       "tensor 'x': " + shape_rule},
      {"shape string", oneEntry(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"),
       "tensor 'x': " + shape_rule},
      {"shape past int64",
       oneEntry(R"({"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]})"),
       "tensor 'x': " + shape_rule},
      {"data_offsets missing", oneEntry(R"({"dtype":"F32","shape":[2]})"),
       "tensor 'x': data_offsets is missing"},
      {"data_offsets one number", oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})"),
       "tensor 'x': " + offsets_rule},
      {"data_offsets three numbers",
       oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})"),
       "tensor 'x': " + offsets_rule},
      {"data_offsets negative", oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"),
       "tensor 'x': " + offsets_rule},
      {"data_offsets strings", oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":["0","8"]})"),
       "tensor 'x': " + offsets_rule},
      {"data_offsets object", oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":{}})"),
       "tensor 'x': " + offsets_rule},
      {"data_offsets reversed", oneEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"),
       "tensor 'x': data_offsets [8, 0): begin is after end"},
      {"end past the data section", oneEntry(f32x2, 7),
       "tensor 'x': data_offsets [0, 8) exceed the data section (7 bytes)"},
      {"end near 2^64",
       oneEntry(R"({"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,)"
                R"(18446744073709551615]})"),
       "tensor 'x': data_offsets [18446744073709551614, 18446744073709551615) exceed the data "
       "section (8 bytes)"},
      {"size below shape", oneEntry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
       "tensor 'x': data_offsets [0, 8) hold 8 bytes but F32 shape [3] needs 12 bytes"},
      {"size above shape", oneEntry(R"({"dtype":"F32","shape":[1,1],"data_offsets":[0,8]})"),
       "tensor 'x': data_offsets [0, 8) hold 8 bytes but F32 shape [1, 1] needs 4 bytes"},
      {"shape overflows",
       oneEntry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"),
       "tensor 'x': data_offsets [0, 8) hold 8 bytes but F32 shape [4294967296, 4294967296] "
       "needs 2^64 bytes or more"},
      {"tensors overlap",
       makeSafetensors(
           R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":)" + f32x2 + "}",
           std::string(12, '\0')),
       "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
      {"tensors share a range",
       makeSafetensors(R"({"b":)" + f32x2 + R"(,"a":)" + f32x2 + "}", std::string(8, '\0')),
       "tensors 'a' [0, 8) and 'b' [0, 8) overlap"},
      {"tensor twice",
       makeSafetensors(R"({"x":)" + f32x2 + R"(,"x":)" + f32x2 + "}", std::string(8, '\0')),
       "tensor 'x': appears twice in the header"},
      {"metadata not an object", makeSafetensors(R"({"__metadata__":"v"})", ""),
       "__metadata__ is not a JSON object"},
      {"metadata number value", makeSafetensors(R"({"__metadata__":{"k":1}})", ""),
       "__metadata__ 'k' is not a string"},
      {"metadata null value", makeSafetensors(R"({"__metadata__":{"a":"ok","k":null}})", ""),
       "__metadata__ 'k' is not a string"},
      {"metadata object value", makeSafetensors(R"({"__metadata__":{"k":{}}})", ""),
       "__metadata__ 'k' is not a string"},
      {"metadata key twice", makeSafetensors(R"({"__metadata__":{"k":"a","k":"b"}})", ""),
       "__metadata__ 'k' appears twice"},
      {"metadata twice", makeSafetensors(R"({"__metadata__":{},"__metadata__":{}})", ""),
       "__metadata__ appears twice"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    StatusOr<SafetensorsFile> file = SafetensorsFile::parse(c.bytes, kSource);
    REQUIRE_FALSE(file.ok());
    CHECK(file.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(messageOf(file.status()) == std::string(kSource) + ": " + c.message);
  }
}

TEST_CASE("SafetensorsFile::floats refuses missing, non-F32 and non-finite tensors") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::string bytes = makeSafetensors({
      f32Tensor("ok", {2}, {1.0f, 2.0f}),
      TestTensor{"half", "F16", {2}, std::string(4, '\0')},
      TestTensor{"double", "F64", {1}, std::string(8, '\0')},
      f32Tensor("nan", {4}, {0.0f, 1.0f, nan, 2.0f}),
      f32Tensor("neg_nan", {1}, {-nan}),
      f32Tensor("inf", {2}, {inf, nan}),
      f32Tensor("neg_inf", {2}, {1.0f, -inf}),
  });
  StatusOr<SafetensorsFile> file = SafetensorsFile::parse(bytes, kSource);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  CHECK(*file->floats("ok") == std::vector<float>{1.0f, 2.0f});

  struct Case {
    std::string tensor;
    absl::StatusCode code;
    std::string message;  // after "m.safetensors: "
  };
  const std::vector<Case> cases = {
      {"absent", absl::StatusCode::kNotFound, "tensor 'absent' is missing"},
      {"half", absl::StatusCode::kInvalidArgument, "tensor 'half' has dtype F16; expected F32"},
      {"double", absl::StatusCode::kInvalidArgument, "tensor 'double' has dtype F64; expected F32"},
      {"nan", absl::StatusCode::kInvalidArgument, "tensor 'nan': element 2 is NaN"},
      {"neg_nan", absl::StatusCode::kInvalidArgument, "tensor 'neg_nan': element 0 is NaN"},
      {"inf", absl::StatusCode::kInvalidArgument, "tensor 'inf': element 0 is infinite"},
      {"neg_inf", absl::StatusCode::kInvalidArgument, "tensor 'neg_inf': element 1 is infinite"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.tensor);
    StatusOr<std::vector<float>> values = file->floats(c.tensor);
    REQUIRE_FALSE(values.ok());
    CHECK(values.status().code() == c.code);
    CHECK(messageOf(values.status()) == std::string(kSource) + ": " + c.message);
  }
}

TEST_CASE("makeSafetensors pads the header to 8 bytes with spaces, as the reference writer does") {
  const std::string bytes = makeSafetensors({f32Tensor("a", {1}, {1.0f})});
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), sizeof(header_size));
  CHECK(header_size % 8 == 0);
  CHECK(bytes.size() == 8 + header_size + 4);
  CHECK(parseError(bytes) == "(parsed)");
}

// A fresh directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "safetensors_test.XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST_CASE("SafetensorsFile::open reads a file and names it in errors") {
  TempDir dir;
  const std::string good = (dir.path() / "model.safetensors").string();
  std::ofstream(good, std::ios::binary)
      << makeSafetensors({f32Tensor("w", {3}, {1.5f, -2.0f, 4.0f})}, {{"k", "v"}});
  StatusOr<SafetensorsFile> file = SafetensorsFile::open(good);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  CHECK(file->source() == good);
  CHECK(file->metadata().at("k") == "v");
  CHECK(*file->floats("w") == std::vector<float>{1.5f, -2.0f, 4.0f});
  CHECK(messageOf(file->floats("v").status()) == good + ": tensor 'v' is missing");

  const std::string truncated = (dir.path() / "short.safetensors").string();
  std::ofstream(truncated, std::ios::binary) << "abc";
  CHECK(messageOf(SafetensorsFile::open(truncated).status()) ==
        truncated + ": file is 3 bytes; a safetensors file starts with an 8-byte header length");

  const std::string missing = (dir.path() / "missing.safetensors").string();
  const Status not_found = SafetensorsFile::open(missing).status();
  CHECK(not_found.code() == absl::StatusCode::kNotFound);
  CHECK(messageOf(not_found) ==
        missing + ": cannot open safetensors file: No such file or directory");

  const Status is_dir = SafetensorsFile::open(dir.path().string()).status();
  CHECK_FALSE(is_dir.ok());
  CHECK(messageOf(is_dir) ==
        dir.path().string() + ": cannot read safetensors file: Is a directory");

  const std::string empty = (dir.path() / "empty.safetensors").string();
  std::ofstream(empty, std::ios::binary).flush();
  CHECK(messageOf(SafetensorsFile::open(empty).status()) ==
        empty + ": file is 0 bytes; a safetensors file starts with an 8-byte header length");

  // A FIFO nobody writes to: a plain open() would wait for a writer forever.
  const std::string fifo = (dir.path() / "fifo.safetensors").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(messageOf(SafetensorsFile::open(fifo).status()) ==
        fifo + ": safetensors file is a FIFO, not a regular file");
}

// A sparse file: its holes read as zeros and take no disk. `size` bytes, starting with `head`.
void writeSparse(const std::string& path, const std::string& head, off_t size) {
  std::ofstream(path, std::ios::binary) << head;
  REQUIRE(::truncate(path.c_str(), size) == 0);
}

TEST_CASE("SafetensorsFile::open maps a file far larger than memory without reading it") {
  TempDir dir;
  // 1 TiB: a reader that copied the file would need that much memory. The tensor's 4 bytes lie
  // at the end of a data section that is all holes.
  const std::string big = (dir.path() / "big.safetensors").string();
  const uint64_t data_size = (uint64_t{1} << 40) - 8 - 128;
  std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
                       std::to_string(data_size - 4) + "," + std::to_string(data_size) + "]}}";
  header.append(128 - header.size(), ' ');
  writeSparse(big, makeSafetensors(header, ""), off_t{1} << 40);
  StatusOr<SafetensorsFile> file = SafetensorsFile::open(big);
  REQUIRE_MESSAGE(file.ok(), file.status().message());
  CHECK(*file->floats("w") == std::vector<float>{0.0f});

  // The header length says 2^63; the file is 4 KiB.
  const std::string huge_header = (dir.path() / "huge-header.safetensors").string();
  writeSparse(huge_header, std::string("\0\0\0\0\0\0\0\x80", 8), 4096);
  CHECK(messageOf(SafetensorsFile::open(huge_header).status()) ==
        huge_header +
            ": header length 9223372036854775808 runs past the end of the file (4096 bytes)");

  // A header length inside the file but over the reference implementation's limit.
  const std::string long_header = (dir.path() / "long-header.safetensors").string();
  writeSparse(long_header, std::string("\x01\xe1\xf5\x05\0\0\0\0", 8), 200'000'000);
  CHECK(messageOf(SafetensorsFile::open(long_header).status()) ==
        long_header + ": header length 100000001 exceeds the limit of 100000000 bytes");
}

}  // namespace
}  // namespace serve
