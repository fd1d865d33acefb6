#include "contexts/kernelspec.hpp"

#include <cstdlib>
#include <fstream>
#include <optional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_folder.hpp"

namespace kh::contexts {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using temp_folder = kh::test::temp_folder;

// Sets (or unsets, with nullopt) an environment variable for the scope of a test.
class scoped_env {
 public:
  scoped_env(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Writes <folder>/kernels/<name>/kernel.json and returns the spec folder.
fs::path write_spec(const fs::path& folder, const std::string& name, const std::string& json_text) {
  const fs::path dir = folder / "kernels" / name;
  fs::create_directories(dir);
  std::ofstream(dir / "kernel.json") << json_text;
  return dir;
}

std::string simple_spec(const std::string& display_name) {
  return nl::json{{"argv", {"/bin/sh", "-c", "true"}}, {"display_name", display_name}, {"language", "sh"}}.dump();
}

TEST(kernelspec, loads_a_full_spec) {
  temp_folder tmp;
  const auto dir = write_spec(tmp.path(), "My.Kernel_1-x", R"({
    "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3",
    "language": "python",
    "interrupt_mode": "message",
    "env": {"A": "1", "B": "${HOME}/b"},
    "metadata": {"debugger": true},
    "kernel_protocol_version": "5.3",
    "unknown_key": [1, 2, 3]
  })");

  auto spec = load_kernelspec(dir);
  ASSERT_TRUE(spec) << spec.error().to_string();
  EXPECT_EQ(spec->name, "my.kernel_1-x");
  EXPECT_EQ(spec->resource_dir, dir);
  EXPECT_THAT(spec->argv, ElementsAre("python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"));
  EXPECT_EQ(spec->display_name, "Python 3");
  EXPECT_EQ(spec->language, "python");
  EXPECT_EQ(spec->interrupt_mode, interrupt_mode::message);
  EXPECT_EQ(spec->env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "${HOME}/b"}}));
  EXPECT_EQ(spec->metadata, (nl::json{{"debugger", true}}));

  const nl::json j = spec->to_json();
  EXPECT_EQ(j["argv"], nl::json({"python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"}));
  EXPECT_EQ(j["display_name"], "Python 3");
  EXPECT_EQ(j["language"], "python");
  EXPECT_EQ(j["interrupt_mode"], "message");
  EXPECT_EQ(j["env"], (nl::json{{"A", "1"}, {"B", "${HOME}/b"}}));
  EXPECT_EQ(j["metadata"], (nl::json{{"debugger", true}}));
  EXPECT_FALSE(j.contains("unknown_key"));
}

TEST(kernelspec, optional_fields_have_defaults) {
  temp_folder tmp;
  auto spec = load_kernelspec(write_spec(tmp.path(), "plain", simple_spec("Plain")).string() + "/");
  ASSERT_TRUE(spec) << spec.error().to_string();
  EXPECT_EQ(spec->name, "plain");  // a trailing slash does not empty the name
  EXPECT_EQ(spec->interrupt_mode, interrupt_mode::signal);
  EXPECT_TRUE(spec->env.empty());
  EXPECT_EQ(spec->metadata, nl::json::object());
  EXPECT_EQ(spec->to_json()["interrupt_mode"], "signal");
  EXPECT_EQ(spec->to_json()["env"], nl::json::object());
}

struct bad_spec_case {
  const char* label;
  const char* json_text;
  const char* field;
};

class kernelspec_bad_field : public ::testing::TestWithParam<bad_spec_case> {};

TEST_P(kernelspec_bad_field, error_names_file_and_field) {
  temp_folder tmp;
  const auto dir = write_spec(tmp.path(), "bad", GetParam().json_text);
  auto spec = load_kernelspec(dir);
  ASSERT_FALSE(spec);
  const auto file = (dir / "kernel.json").string();
  EXPECT_EQ(spec.error().code, errc::invalid_kernelspec);
  EXPECT_THAT(spec.error().message, HasSubstr("kernel.json at " + file + ": field " + GetParam().field + ": "));
  EXPECT_EQ(spec.error().details["path"], file);
  EXPECT_EQ(spec.error().details["field"], GetParam().field);
}

INSTANTIATE_TEST_SUITE_P(
    fields, kernelspec_bad_field,
    ::testing::Values(
        bad_spec_case{"not_object", R"(["a"])", "(root)"},
        bad_spec_case{"argv_missing", R"({"display_name": "x", "language": "y"})", "argv"},
        bad_spec_case{"argv_empty", R"({"argv": [], "display_name": "x", "language": "y"})", "argv"},
        bad_spec_case{"argv_not_array", R"({"argv": "python", "display_name": "x", "language": "y"})", "argv"},
        bad_spec_case{"argv_not_strings", R"({"argv": ["a", 1], "display_name": "x", "language": "y"})", "argv"},
        bad_spec_case{"display_name_missing", R"({"argv": ["a"], "language": "y"})", "display_name"},
        bad_spec_case{"display_name_number", R"({"argv": ["a"], "display_name": 3, "language": "y"})",
                      "display_name"},
        bad_spec_case{"language_missing", R"({"argv": ["a"], "display_name": "x"})", "language"},
        bad_spec_case{"language_null", R"({"argv": ["a"], "display_name": "x", "language": null})", "language"},
        bad_spec_case{"interrupt_mode_bad",
                      R"({"argv": ["a"], "display_name": "x", "language": "y", "interrupt_mode": "sigint"})",
                      "interrupt_mode"},
        bad_spec_case{"env_not_object", R"({"argv": ["a"], "display_name": "x", "language": "y", "env": []})",
                      "env"},
        bad_spec_case{"env_value_number",
                      R"({"argv": ["a"], "display_name": "x", "language": "y", "env": {"A": 1}})", "env"},
        bad_spec_case{"metadata_not_object",
                      R"({"argv": ["a"], "display_name": "x", "language": "y", "metadata": "m"})", "metadata"}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(kernelspec, invalid_json_and_missing_file_name_the_file) {
  temp_folder tmp;
  const auto dir = write_spec(tmp.path(), "broken", "{ not json");
  auto spec = load_kernelspec(dir);
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().code, errc::invalid_kernelspec);
  EXPECT_THAT(spec.error().message, HasSubstr((dir / "kernel.json").string()));

  auto missing = load_kernelspec(tmp.path() / "kernels" / "nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::invalid_kernelspec);
  EXPECT_THAT(missing.error().message, HasSubstr("nothing/kernel.json"));
}

TEST(kernelspec, folder_name_must_be_a_valid_kernel_name) {
  temp_folder tmp;
  auto spec = load_kernelspec(write_spec(tmp.path(), "has space", simple_spec("x")));
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().code, errc::invalid_kernelspec);
  EXPECT_EQ(spec.error().details["field"], "name");
}

TEST(kernelspec, first_folder_wins_and_result_is_sorted) {
  temp_folder high, low;
  write_spec(high.path(), "zeta", simple_spec("Zeta high"));
  write_spec(high.path(), "Shared", simple_spec("Shared high"));
  write_spec(low.path(), "shared", simple_spec("Shared low"));
  write_spec(low.path(), "alpha", simple_spec("Alpha low"));
  write_spec(low.path(), "broken", "[]");

  std::vector<error> invalid;
  const auto specs = find_kernelspecs({high.path(), high.path() / "missing", low.path()}, &invalid);
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  EXPECT_THAT(names, ElementsAre("alpha", "shared", "zeta"));
  EXPECT_EQ(specs[1].display_name, "Shared high");
  ASSERT_EQ(invalid.size(), 1u);
  EXPECT_EQ(invalid[0].code, errc::invalid_kernelspec);
  EXPECT_THAT(invalid[0].message, HasSubstr("broken"));

  // Without an `invalid` vector, invalid specs are skipped quietly.
  EXPECT_EQ(find_kernelspecs({low.path()}).size(), 2u);
}

TEST(kernelspec, find_is_case_insensitive_and_priority_ordered) {
  temp_folder high, low;
  write_spec(high.path(), "Shared", simple_spec("Shared high"));
  write_spec(low.path(), "shared", simple_spec("Shared low"));
  write_spec(low.path(), "Only-Low", simple_spec("Only low"));

  auto shared = find_kernelspec("SHARED", {high.path(), low.path()});
  ASSERT_TRUE(shared) << shared.error().to_string();
  EXPECT_EQ(shared->display_name, "Shared high");
  EXPECT_EQ(shared->name, "shared");

  auto only_low = find_kernelspec("only-low", {high.path(), low.path()});
  ASSERT_TRUE(only_low) << only_low.error().to_string();
  EXPECT_EQ(only_low->name, "only-low");

  auto reversed = find_kernelspec("shared", {low.path(), high.path()});
  ASSERT_TRUE(reversed);
  EXPECT_EQ(reversed->display_name, "Shared low");
}

TEST(kernelspec, not_found_lists_names_and_folders) {
  temp_folder tmp;
  write_spec(tmp.path(), "one", simple_spec("One"));
  write_spec(tmp.path(), "two", simple_spec("Two"));
  auto spec = find_kernelspec("three", {tmp.path()});
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().code, errc::kernel_not_found);
  EXPECT_THAT(spec.error().message, HasSubstr("three"));
  EXPECT_THAT(spec.error().message, HasSubstr("one, two"));
  EXPECT_THAT(spec.error().message, HasSubstr((tmp.path() / "kernels").string()));
  EXPECT_EQ(spec.error().details["available"], nl::json({"one", "two"}));
}

TEST(kernelspec, find_reports_an_invalid_spec_instead_of_not_found) {
  temp_folder tmp;
  write_spec(tmp.path(), "broken", R"({"argv": []})");
  auto spec = find_kernelspec("broken", {tmp.path()});
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().code, errc::invalid_kernelspec);
}

TEST(kernelspec, data_path_order) {
  scoped_env jp("JUPYTER_PATH", "/jp/one::/jp/two/");
  scoped_env data("JUPYTER_DATA_DIR", "/user/data");
  EXPECT_THAT(jupyter_data_path({"/extra", "/jp/one"}),
              ElementsAre("/jp/one", "/jp/two", "/extra", "/user/data", "/usr/local/share/jupyter",
                          "/usr/share/jupyter"));
}

TEST(kernelspec, data_path_user_folder_fallbacks) {
  scoped_env jp("JUPYTER_PATH", std::nullopt);
  scoped_env data("JUPYTER_DATA_DIR", std::nullopt);
  {
    scoped_env xdg("XDG_DATA_HOME", "/xdg");
    EXPECT_THAT(jupyter_data_path(), ElementsAre("/xdg/jupyter", "/usr/local/share/jupyter", "/usr/share/jupyter"));
  }
  scoped_env xdg("XDG_DATA_HOME", std::nullopt);
  scoped_env home("HOME", "/home/someone");
  EXPECT_THAT(jupyter_data_path(),
              ElementsAre("/home/someone/.local/share/jupyter", "/usr/local/share/jupyter", "/usr/share/jupyter"));
}

TEST(kernelspec, jupyter_path_is_honoured) {
  temp_folder tmp;
  write_spec(tmp.path(), "kh-from-env", simple_spec("From JUPYTER_PATH"));
  scoped_env jp("JUPYTER_PATH", tmp.path().string());
  auto spec = find_kernelspec("kh-from-env", jupyter_data_path());
  ASSERT_TRUE(spec) << spec.error().to_string();
  EXPECT_EQ(spec->display_name, "From JUPYTER_PATH");
}

TEST(kernelspec, expand_argv_substitutes_and_replaces_python) {
  kernelspec spec;
  spec.resource_dir = "/specs/k";
  spec.argv = {"python3", "-f", "{connection_file}", "--conn={connection_file}", "{resource_dir}/logo.png"};
  EXPECT_THAT(expand_argv(spec, "/run/kernel-1.json"),
              ElementsAre("/usr/bin/python3", "-f", "/run/kernel-1.json", "--conn=/run/kernel-1.json",
                          "/specs/k/logo.png"));

  spec.argv = {"python", "x"};
  EXPECT_THAT(expand_argv(spec, "/c.json", "/opt/py"), ElementsAre("/opt/py", "x"));

  // Only the bare names are replaced: an explicit interpreter is the spec author's choice.
  for (const char* kept : {"python3.11", "/usr/bin/python", "ipython"}) {
    spec.argv = {kept};
    EXPECT_THAT(expand_argv(spec, "/c.json"), ElementsAre(kept));
  }
}

TEST(kernelspec, expand_env_substitutes_from_base) {
  kernelspec spec;
  spec.env = {{"PATHLIKE", "${HOME}/bin:${MISSING}:${HOME}"},
              {"PLAIN", "no vars"},
              {"DOLLAR", "$HOME stays"},
              {"UNTERMINATED", "a${HOME"}};
  const auto env = expand_env(spec, {{"HOME", "/h"}});
  EXPECT_EQ(env.at("PATHLIKE"), "/h/bin::/h");
  EXPECT_EQ(env.at("PLAIN"), "no vars");
  EXPECT_EQ(env.at("DOLLAR"), "$HOME stays");
  EXPECT_EQ(env.at("UNTERMINATED"), "a${HOME");
  EXPECT_EQ(env.size(), 4u);
}

}  // namespace
}  // namespace kh::contexts
