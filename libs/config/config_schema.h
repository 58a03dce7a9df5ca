#ifndef GYRE_LIBS_CONFIG_CONFIG_SCHEMA_H_
#define GYRE_LIBS_CONFIG_CONFIG_SCHEMA_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

namespace gyre::config {

// Declares the keys of one service's typed configuration and how each value
// is decoded into the struct that holds it. The same decoder serves every
// source (YAML file, GYRE_* environment, flags), so a value is validated the
// same way wherever it comes from.
//
// Keys are flat snake_case names ("grpc_address"); the environment variable
// for a key is GYRE_ + the key in upper case ("GYRE_GRPC_ADDRESS").
// Targets are borrowed and must outlive the schema. Not thread-safe: build
// and load it once at start.
class ConfigSchema {
 public:
  // Decodes one value into its target. The returned status message says
  // what is wrong with the value; the loader adds where it came from.
  using Decoder = std::function<absl::Status(const YAML::Node& value)>;

  struct Field {
    std::string key;
    std::string help;
    Decoder decode;
    // True when the value is a map or list; environment and flag strings for
    // it are parsed as YAML flow syntax ("{cpu: {max: 4}}").
    bool structured = false;
    // For a key declared with AddListenAddress: the address the process
    // will listen on, so it can check the port is free before it starts.
    const std::string* listen_address = nullptr;
    // The target's value as text, as a flag would give it; printed as the
    // default in --help (the schema is read before anything is loaded).
    std::function<std::string()> show;
    // A bool: `--key` alone means true and `--nokey` false.
    bool boolean = false;
  };

  void AddString(std::string key, std::string* target, std::string help);
  // Accepts "host:port" with a port in 0..65535 (0 picks a free port).
  void AddAddress(std::string key, std::string* target, std::string help);
  // An address this process listens on (AddAddress, and marked so).
  void AddListenAddress(std::string key, std::string* target, std::string help);
  void AddInt(std::string key, int64_t* target, int64_t min, int64_t max, std::string help);
  void AddBool(std::string key, bool* target, std::string help);
  // A non-negative duration such as "10s", "250ms" or "1h30m".
  void AddDuration(std::string key, absl::Duration* target, std::string help);
  void AddChoice(std::string key, std::string* target, std::vector<std::string> choices,
                 std::string help);
  void AddStringList(std::string key, std::vector<std::string>* target, std::string help);
  // `show` gives the target's value as text for --help (none: "see docs").
  void AddCustom(std::string key, Decoder decoder, bool structured, std::string help,
                 std::function<std::string()> show = nullptr);
  // Every field of `other` whose key this schema does not have yet and is
  // not in `except`: how one process (gyre dev) takes the settings of the
  // components it runs. `other`'s targets must outlive this schema.
  void AddAllFrom(const ConfigSchema& other, const std::vector<std::string>& except = {});

  const Field* Find(absl::string_view key) const;
  std::vector<std::string> Keys() const;
  const std::vector<Field>& fields() const { return fields_; }

  // The environment variable that overrides `key`.
  static std::string EnvironmentName(absl::string_view key);

 private:
  std::vector<Field> fields_;
};

}  // namespace gyre::config

#endif  // GYRE_LIBS_CONFIG_CONFIG_SCHEMA_H_
