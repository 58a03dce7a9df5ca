#include "services/orchestrator/task_cost_meter.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gyre::orchestrator {
namespace {

const std::string kDefaultQueue = "default";

bool IsPrometheusLabelName(const std::string& name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  if (name.rfind("__", 0) == 0) return false;  // reserved for Prometheus itself
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

absl::Status TaskCostOptions::Validate() const {
  if (label_keys.size() > kMaxLabelKeys) {
    return absl::InvalidArgumentError(absl::StrCat("cost_labels: ", label_keys.size(),
                                                   " keys, more than the limit of ", kMaxLabelKeys,
                                                   " (each multiplies the series)"));
  }
  for (size_t i = 0; i < label_keys.size(); ++i) {
    const std::string& key = label_keys[i];
    if (!IsPrometheusLabelName(key) || key == "worker_type") {
      return absl::InvalidArgumentError(
          absl::StrCat("cost_labels: \"", key,
                       "\" is not usable as a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not "
                       "starting with \"__\", not worker_type)"));
    }
    if (std::find(label_keys.begin(), label_keys.begin() + static_cast<long>(i), key) !=
        label_keys.begin() + static_cast<long>(i)) {
      return absl::InvalidArgumentError(absl::StrCat("cost_labels: \"", key, "\" is listed twice"));
    }
  }
  for (const auto& [type, price] : prices) {
    if (price.core_hour < 0 || price.gib_hour < 0 || price.gpu_hour < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker_prices: ", type, ": a price must not be negative"));
    }
  }
  return absl::OkStatus();
}

TaskCostMeter::TaskCostMeter(prometheus::Registry* registry, TaskCostOptions options)
    : options_(std::move(options)), seen_values_(options_.label_keys.size()) {
  if (registry == nullptr || options_.prices.empty()) return;
  family_ = &prometheus::BuildCounter()
                 .Name("gyre_task_cost_total")
                 .Help(
                     "Cost of task attempts that reported a result, in the currency of "
                     "worker_prices: wall hours x (cores x core_hour + GiB x gib_hour + GPUs x "
                     "gpu_hour), cores and memory as declared, else as used.")
                 .Register(*registry);
}

std::string TaskCostMeter::BoundedValue(size_t key_index, const std::string& value) {
  std::string bounded = value.substr(0, kMaxLabelValueLength);
  absl::flat_hash_set<std::string>& seen = seen_values_[key_index];
  if (seen.contains(bounded)) return bounded;
  if (seen.size() >= kMaxValuesPerLabel) return "other";
  seen.insert(bounded);
  return bounded;
}

double TaskCostMeter::Record(const gyre::v1::WorkflowDefinition& definition,
                             const gyre::v1::TaskSpec& spec, const AttemptRecord& attempt) {
  if (options_.prices.empty()) return 0;
  const std::string& queue = !spec.queue().empty()                 ? spec.queue()
                             : !definition.default_queue().empty() ? definition.default_queue()
                                                                   : kDefaultQueue;
  return Record(queue, spec.labels(), spec.resources(), attempt);
}

double TaskCostMeter::Record(const std::string& worker_type,
                             const google::protobuf::Map<std::string, std::string>& task_labels,
                             const gyre::v1::Resources& declared, const AttemptRecord& attempt) {
  auto price = options_.prices.find(worker_type);
  if (price == options_.prices.end()) return 0;
  const double cost = TaskCost(
      price->second, ChargedHold(declared.cpu(), static_cast<double>(declared.memory_bytes()),
                                 declared.gpus(), static_cast<double>(attempt.wall_time) / 1e9,
                                 static_cast<double>(attempt.cpu_time) / 1e9,
                                 static_cast<double>(attempt.peak_rss_bytes)));
  if (family_ == nullptr) return cost;
  absl::MutexLock lock(&mutex_);
  std::vector<std::string> values;
  values.reserve(options_.label_keys.size());
  std::string key = worker_type;
  for (size_t i = 0; i < options_.label_keys.size(); ++i) {
    auto label = task_labels.find(options_.label_keys[i]);
    values.push_back(BoundedValue(i, label == task_labels.end() ? "" : label->second));
    absl::StrAppend(&key, std::string(1, '\0'), values.back());
  }
  prometheus::Counter*& counter = counters_[key];
  if (counter == nullptr) {
    std::map<std::string, std::string> labels = {{"worker_type", worker_type}};
    for (size_t i = 0; i < values.size(); ++i) labels[options_.label_keys[i]] = values[i];
    counter = &family_->Add(labels);
  }
  counter->Increment(cost);
  return cost;
}

}  // namespace gyre::orchestrator
