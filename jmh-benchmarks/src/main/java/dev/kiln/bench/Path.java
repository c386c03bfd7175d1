package dev.kiln.bench;

import dev.kiln.compiler.IdleMode;
import dev.kiln.tensor.Tensor;

/**
 * One way to run a {@link Scenario}'s executions: Kiln compiled or dynamic, or a baseline. A
 * path keeps up to {@code window} executions in flight: {@link #submit} starts one,
 * {@link #next} waits for the oldest unfinished one. A latency benchmark submits and waits
 * (window 1); a throughput benchmark keeps {@code window - 1} executions in flight between
 * its operations, so each operation finishes one execution while the others run.
 *
 * <p>Driven by one thread (the JMH thread); not thread-safe.
 */
abstract class Path implements AutoCloseable {

    /** The execution's shape and its expected results. */
    final Scenario scenario;
    /** How the path's threads wait, where the path has a choice. */
    final IdleMode idle;
    /** Executions in flight at most. */
    final int window;
    /** The tensor scenarios' input, owned by the path; null otherwise. */
    final Tensor tensor;

    Path(Scenario scenario, IdleMode idle, int window) {
        if (window < 1) {
            throw new IllegalArgumentException("window must be >= 1, got " + window);
        }
        this.scenario = scenario;
        this.idle = idle;
        this.window = window;
        this.tensor = scenario.tensor() ? scenario.newTensor() : null;
    }

    /**
     * Opens the path a benchmark method stands for.
     *
     * @param name     the path: {@code compiled}, {@code dynamic}, {@code compiledWorker}, {@code dynamicWorker} (the
     *                 actors in worker JVMs), {@code executor}, {@code pekko}, {@code disruptor}, {@code aeron}
     * @param scenario what one execution does
     * @param idle     how waiting threads idle, where the path has a choice
     * @param window   executions in flight at most (the compiled graph's {@code maxInflight} in throughput runs)
     * @param inflight the compiled graph's {@code maxInflight}
     * @return the path, running and checked; close it when done
     */
    static Path open(String name, Scenario scenario, IdleMode idle, int window, int inflight) {
        Path p = switch (name) {
            case "compiled" -> new CompiledPath(scenario, idle, window, inflight, false, false);
            case "compiledTake" -> new CompiledPath(scenario, idle, window, inflight, false, true);
            case "dynamic" -> new DynamicPath(scenario, window, false);
            case "compiledWorker" -> new CompiledPath(scenario, idle, window, inflight, true, false);
            case "dynamicWorker" -> new DynamicPath(scenario, window, true);
            case "executor" -> new ExecutorPath(scenario, window);
            case "pekko" -> new PekkoPath(scenario, window);
            case "disruptor" -> new DisruptorPath(scenario, idle, window);
            case "aeron" -> new AeronPath(scenario, idle, window);
            default -> throw new IllegalArgumentException("no path named " + name);
        };
        try {
            p.check();
        } catch (RuntimeException | Error e) {
            p.close();
            throw e;
        }
        return p;
    }

    /**
     * Starts one execution; at most {@code window} may be unfinished.
     *
     * @param x the input number, in 0..127 (tensor scenarios pass {@link #tensor} instead)
     */
    abstract void submit(long x);

    /** @return the result of the oldest unfinished execution, once it finished */
    abstract long next();

    /** Stops the path's threads and frees what it holds. */
    @Override
    public void close() {
        if (tensor != null) {
            tensor.close();
        }
    }

    /**
     * Runs executions through the whole window, twice round, and compares each result with
     * the scenario computed on this thread; then leaves {@code window - 1} executions in flight.
     *
     * @throws IllegalStateException on a wrong result
     */
    private void check() {
        long[] inputs = new long[3 * window];
        for (int i = 0; i < inputs.length; i++) {
            inputs[i] = (i * 37 + 5) & 127;
        }
        int done = 0;
        for (int i = 0; i < inputs.length; i++) {
            submit(inputs[i]);
            if (i - done + 1 == window) {
                verify(inputs[done++]);
            }
        }
        while (done < inputs.length - (window - 1)) {
            verify(inputs[done++]);
        }
    }

    private void verify(long x) {
        long got = next();
        long want = scenario.expected(x, tensor);
        if (got != want) {
            throw new IllegalStateException(getClass().getSimpleName() + " " + scenario + ": input " + x + " gave "
                    + got + ", expected " + want);
        }
    }
}
