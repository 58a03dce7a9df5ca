// The config loader (every service's YAML file, GYRE_* values) on arbitrary
// bytes, with a schema of every field kind: a loaded config or an error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "libs/config/config_loader.h"

namespace {

struct Settings {
  std::string address = "127.0.0.1:1";
  std::string listen = "127.0.0.1:0";
  std::string text;
  int64_t count = 1;
  bool flag = false;
  absl::Duration wait = absl::Seconds(1);
  std::string choice = "a";
  std::vector<std::string> list;
  std::map<std::string, std::string> custom;
};

void Register(Settings* settings, gyre::config::ConfigSchema* schema) {
  schema->AddAddress("address", &settings->address, "an address");
  schema->AddListenAddress("listen", &settings->listen, "a listen address");
  schema->AddString("text", &settings->text, "a string");
  schema->AddInt("count", &settings->count, 0, 1000, "an int");
  schema->AddBool("flag", &settings->flag, "a bool");
  schema->AddDuration("wait", &settings->wait, "a duration");
  schema->AddChoice("choice", &settings->choice, {"a", "b"}, "a choice");
  schema->AddStringList("list", &settings->list, "a list");
  schema->AddCustom(
      "custom",
      [settings](const YAML::Node& value) -> absl::Status {
        if (!value.IsMap()) return absl::InvalidArgumentError("expected a map");
        for (const auto& entry : value) {
          settings->custom[entry.first.Scalar()] = entry.second.Scalar();
        }
        return absl::OkStatus();
      },
      /*structured=*/true, "a map");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The loader reads a file; one per process, rewritten for every input.
  static const std::string path = [] {
    char name[] = "/tmp/gyre_config_fuzz_XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) abort();
    close(fd);
    return std::string(name);
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  Settings settings;
  gyre::config::ConfigSchema schema;
  Register(&settings, &schema);
  gyre::config::ConfigSources sources;
  sources.file_path = path;
  // The same bytes as a structured environment value (GYRE_CUSTOM).
  sources.environment = [&text](absl::string_view name) -> std::optional<std::string> {
    if (name == "GYRE_CUSTOM") return text;
    return std::nullopt;
  };
  (void)gyre::config::LoadConfig(schema, sources);
  return 0;
}
