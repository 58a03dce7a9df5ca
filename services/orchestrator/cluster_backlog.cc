#include "services/orchestrator/cluster_backlog.h"

namespace gyre::orchestrator {

void ClusterBacklog::Publish(absl::Span<const OwnQueue> own, std::vector<QueueBacklog>* cluster,
                             std::vector<std::pair<std::string, QueueBacklog>>* elsewhere) {
  cluster->clear();
  elsewhere->clear();
  absl::MutexLock lock(&mutex_);
  ++pass_;
  for (const OwnQueue& queue : own) {
    // A queue's name is copied once, when it is first published.
    auto it = own_.find(queue.name);
    if (it == own_.end()) it = own_.emplace(std::string(queue.name), OwnEntry{}).first;
    it->second = OwnEntry{queue.backlog, pass_};
    QueueBacklog total = queue.backlog;
    if (auto other = others_.find(queue.name); other != others_.end()) {
      total.queued += other->second.queued;
      total.running += other->second.running;
    }
    cluster->push_back(total);
  }
  // Queues the engine forgot count zero: their names go.
  for (auto it = own_.begin(); it != own_.end();) {
    if (it->second.pass != pass_) {
      own_.erase(it++);
    } else {
      ++it;
    }
  }
  for (const auto& [name, backlog] : others_) {
    // Forecasts alone are the load forecaster's (Others()), not a backlog.
    if ((backlog.queued != 0 || backlog.running != 0) && !own_.contains(name)) {
      elsewhere->emplace_back(name, backlog);
    }
  }
}

QueueBacklogs ClusterBacklog::Others() const {
  absl::MutexLock lock(&mutex_);
  return others_;
}

std::map<std::string, QueueBacklog> ClusterBacklog::Own() const {
  std::map<std::string, QueueBacklog> own;
  absl::MutexLock lock(&mutex_);
  for (const auto& [name, entry] : own_) {
    if (!entry.backlog.empty()) own.emplace(name, entry.backlog);
  }
  for (const auto& [name, forecast] : own_forecasts_) {
    if (forecast.workers_60s == 0 && forecast.workers_300s == 0) continue;
    QueueBacklog& entry = own[name];
    entry.forecast_workers_60s = forecast.workers_60s;
    entry.forecast_workers_300s = forecast.workers_300s;
  }
  return own;
}

void ClusterBacklog::SetOwnForecasts(std::map<std::string, OwnForecast> forecasts) {
  absl::MutexLock lock(&mutex_);
  own_forecasts_ = std::move(forecasts);
}

void ClusterBacklog::SetOthers(QueueBacklogs others) {
  for (auto it = others.begin(); it != others.end();) {
    if (it->second.empty()) {
      others.erase(it++);
    } else {
      ++it;
    }
  }
  absl::MutexLock lock(&mutex_);
  others_ = std::move(others);
}

}  // namespace gyre::orchestrator
