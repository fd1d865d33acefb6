// Variables set and read back: through kernel-host-python's comm (arrays as raw buffers), and
// through generated code for ipykernel (Python) and Deno (TypeScript).

#include <chrono>
#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "contexts/variables.hpp"
#include "support/test_env.hpp"

namespace kh::contexts {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const nl::json sample = {{"cfg", {{"name", "run-1"}, {"ratio", 2.5}, {"tags", {"a", "b"}}, {"on", true}, {"none", nullptr}}},
                         {"count", 42},
                         {"label", "héllo ✓"}};

void expect_round_trip(kernel_manager& kernel) {
  variables_request req;
  req.set = sample;
  req.get = {"cfg", "count", "label", "not_defined_here"};
  auto r = exchange_variables(kernel, req);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->values["cfg"], sample["cfg"]);
  EXPECT_EQ(r->values["count"], 42);
  EXPECT_EQ(r->values["label"], "héllo ✓");
  EXPECT_THAT(r->missing, ElementsAre("not_defined_here"));
}

TEST(variables, kernel_host_python_json_round_trip_and_types) {
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  expect_round_trip(*kernel);
  auto types = kernel->execute_blocking({.code = "print(type(cfg).__name__, type(cfg['tags']).__name__, type(count).__name__, cfg['none'])"}, 30s);
  ASSERT_TRUE(types);
  EXPECT_EQ(test::stream_text(*types), "dict list int None\n");
}

TEST(variables, kernel_host_python_numpy_arrays_through_buffers) {
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  std::vector<double> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i) * 0.5;
  variables_request req;
  req.arrays["grid"] = {"float64", {10, 100}, std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double))};
  auto set = exchange_variables(*kernel, req);
  ASSERT_TRUE(set) << set.error().to_string();
  auto check = kernel->execute_blocking({.code = "print(grid.shape, grid.dtype, grid[3, 7], grid.sum())\ndoubled = grid * 2"}, 30s);
  ASSERT_TRUE(check);
  EXPECT_EQ(test::stream_text(*check), "(10, 100) float64 153.5 249750.0\n");

  variables_request get;
  get.get = {"doubled"};
  auto back = exchange_variables(*kernel, get);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(back->arrays.contains("doubled"));
  const auto& arr = back->arrays["doubled"];
  EXPECT_THAT(arr.shape, ElementsAre(10u, 100u));
  ASSERT_EQ(arr.data.size(), values.size() * sizeof(double));
  double v = 0;
  std::memcpy(&v, arr.data.data() + 37 * sizeof(double), sizeof v);
  EXPECT_EQ(v, 37.0);
}

TEST(variables, kernel_host_python_100_mb_of_float64) {
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  const std::size_t n = 100 * 1000 * 1000 / sizeof(double);
  std::string bytes(n * sizeof(double), '\0');
  double* d = reinterpret_cast<double*>(bytes.data());
  for (std::size_t i = 0; i < n; ++i) d[i] = 1.0;
  variables_request req;
  req.arrays["big"] = {"float64", {n}, std::move(bytes)};
  const auto start = std::chrono::steady_clock::now();
  auto set = exchange_variables(*kernel, req);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(set) << set.error().to_string();
  RecordProperty("set_100mb_seconds", std::to_string(seconds));
  auto check = kernel->execute_blocking({.code = "print(big.size, big.sum(), big.flags['OWNDATA'])"}, 60s);
  ASSERT_TRUE(check);
  // OWNDATA False: the kernel's array is a view of the received buffer, not a copy.
  EXPECT_EQ(test::stream_text(*check), std::to_string(n) + " " + std::to_string(n) + ".0 False\n");
}

TEST(variables, bad_names_and_shapes_are_rejected_before_sending) {
  auto kernel = test::start_kernel("kernel-host-python");
  ASSERT_TRUE(kernel);
  variables_request bad_name;
  bad_name.set = {{"import os", 1}};
  auto r = exchange_variables(*kernel, bad_name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_request);
  variables_request bad_shape;
  bad_shape.arrays["a"] = {"float64", {3}, std::string(16, '\0')};
  r = exchange_variables(*kernel, bad_shape);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("24 bytes"));
}

TEST(variables, ipykernel_uses_generated_code) {
  auto kernel = test::start_kernel("python3");
  ASSERT_TRUE(kernel);
  expect_round_trip(*kernel);
  std::vector<double> values = {1.5, 2.5, 3.5};
  variables_request req;
  req.arrays["small"] = {"float64", {3}, std::string(reinterpret_cast<const char*>(values.data()), 24)};
  req.get = {"small"};
  auto r = exchange_variables(*kernel, req);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->values["small"], nl::json::array({1.5, 2.5, 3.5}));
}

TEST(variables, deno_uses_generated_code) {
  auto kernel = test::start_kernel("deno");
  ASSERT_TRUE(kernel);
  expect_round_trip(*kernel);
  auto used = kernel->execute_blocking({.code = "console.log(cfg.tags.length + count)"}, 30s);
  ASSERT_TRUE(used);
  EXPECT_EQ(test::stream_text(*used), "44\n");
  ASSERT_TRUE(kernel->execute_blocking({.code = "const lexical = [1, 2];"}, 30s));
  variables_request get;
  get.get = {"lexical"};
  auto r = exchange_variables(*kernel, get);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->values["lexical"], nl::json::array({1, 2}));
}

TEST(variables, setter_code_for_unknown_language_is_an_error) {
  auto code = variables_setter_code("cobol", {{"a", 1}});
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().code, errc::invalid_request);
  EXPECT_EQ(*variables_setter_code("typescript", {{"a", 1}}), "Object.assign(globalThis, {\"a\":1});");
}

}  // namespace
}  // namespace kh::contexts
