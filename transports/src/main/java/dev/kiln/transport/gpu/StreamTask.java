package dev.kiln.transport.gpu;

/**
 * Work on a simulated stream other than copies and events: a kernel's host code, or a communicator's
 * transfer that completes when its peer matches it. {@link SimulatedDeviceOps} calls {@link #start()} once,
 * under its lock, when the task reaches the head of its stream (every earlier operation of the stream has
 * run), and the stream moves on once {@link #done()} says so; a task completed from another thread then calls
 * {@link SimulatedDeviceOps#wake()}.
 */
interface StreamTask {

    /** Starts the work; must not block. */
    void start();

    /** @return whether the work has finished; called under the simulator's lock */
    boolean done();

    /** Host code that runs in full when it starts. */
    final class Immediate implements StreamTask {
        private final Runnable work;

        Immediate(Runnable work) {
            this.work = work;
        }

        @Override
        public void start() {
            work.run();
        }

        @Override
        public boolean done() {
            return true;
        }
    }
}
