#ifndef GYRE_LIBS_SERVER_TERMINATION_SIGNALS_H_
#define GYRE_LIBS_SERVER_TERMINATION_SIGNALS_H_

namespace gyre::server {

// Blocks SIGTERM and SIGINT in the calling thread. Call first thing in
// main(), before any thread starts, so every thread inherits the mask and
// the signals are only ever consumed by WaitForTerminationSignal().
// Child processes must reset the mask (the agent's spawner does).
void BlockTerminationSignals();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForTerminationSignal();

}  // namespace gyre::server

#endif  // GYRE_LIBS_SERVER_TERMINATION_SIGNALS_H_
