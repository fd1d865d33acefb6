// kh_bench_kernel: our kernel client against any kernelspec.
//   cold start: spawn -> ready (kernel_info_reply and a live IOPub), the kernel_manager::start path
//   round trip: execute(code) until both execute_reply and status idle (as jupyter_client's
//               execute_interactive waits), after warm-up
// Prints one JSON object per measurement on stdout, for bench/run.sh to compare with peers.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "contexts/kernel_manager.hpp"
#include "contexts/kernelspec.hpp"
#include "contexts/reactor.hpp"

namespace ctx = kh::contexts;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

double ms_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

nlohmann::json summary(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[std::min(samples.size() - 1, static_cast<std::size_t>(q * samples.size()))]; };
  return {{"n", samples.size()}, {"median_ms", at(0.5)}, {"p99_ms", at(0.99)}, {"min_ms", samples.front()}};
}

std::vector<std::filesystem::path> data_path() {
  std::vector<std::filesystem::path> extra;
  std::string all = KH_BENCH_DATA_PATH;
  for (std::size_t pos = 0; pos <= all.size();) {
    auto end = all.find(':', pos);
    if (end == std::string::npos) end = all.size();
    if (end > pos) extra.emplace_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  return ctx::jupyter_data_path(extra);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Round trip and cold start of kernel-host's kernel client against a kernel"};
  std::string kernel = "python3";
  std::string code = "1+1";
  int n = 1000, warmup = 50, cold = 5;
  app.add_option("--kernel", kernel, "kernelspec name")->capture_default_str();
  app.add_option("--code", code, "cell to time")->capture_default_str();
  app.add_option("--n", n, "measured executions")->capture_default_str();
  app.add_option("--warmup", warmup, "executions before measuring")->capture_default_str();
  app.add_option("--cold", cold, "cold starts to time (0: none)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto spec = ctx::find_kernelspec(kernel, data_path());
  if (!spec) {
    std::fprintf(stderr, "%s\n", spec.error().to_string().c_str());
    return 2;
  }
  ctx::reactor reactor;

  std::vector<double> starts;
  for (int i = 0; i < cold; ++i) {
    const auto t0 = clock_type::now();
    auto manager = ctx::kernel_manager::start(reactor, *spec);
    if (!manager) {
      std::fprintf(stderr, "%s\n", manager.error().to_string().c_str());
      return 1;
    }
    starts.push_back(ms_since(t0));
    (*manager)->shutdown();
  }
  if (!starts.empty()) {
    auto s = summary(starts);
    s["what"] = "cold_start";
    s["kernel"] = kernel;
    std::printf("%s\n", s.dump().c_str());
  }

  if (n > 0) {
    auto manager = ctx::kernel_manager::start(reactor, *spec);
    if (!manager) {
      std::fprintf(stderr, "%s\n", manager.error().to_string().c_str());
      return 1;
    }
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < warmup + n; ++i) {
      const auto t0 = clock_type::now();
      auto r = (*manager)->execute_blocking({.code = code}, 60s);
      const double ms = ms_since(t0);
      if (!r || !r->ok()) {
        std::fprintf(stderr, "execution failed: %s\n", r ? r->reply.content.dump().c_str() : r.error().to_string().c_str());
        return 1;
      }
      if (i >= warmup) samples.push_back(ms);
    }
    auto s = summary(samples);
    s["what"] = "round_trip";
    s["kernel"] = kernel;
    s["code_chars"] = code.size();
    std::printf("%s\n", s.dump().c_str());
    (*manager)->shutdown();
  }
  return 0;
}
