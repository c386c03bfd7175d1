package dev.kiln.bench;

import dev.kiln.ActorOptions;
import dev.kiln.Kiln;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;

import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * Kiln's dynamic per-call path on the same actors: {@code kiln.call} per actor and execution,
 * a chain as each future's completion starting the next call ({@code thenCompose}), a scatter
 * as four calls whose futures are combined. Actors block (park) when idle: the dynamic path
 * has no idle mode.
 */
final class DynamicPath extends Path {

    private final Kiln kiln;
    private final ActorRef<Stage>[] stages;
    /** Chain step i + 1: calls actor i + 1 with actor i's result. */
    private final Function<Long, CompletableFuture<Long>>[] then;
    /** Per execution in flight, its futures: four for a scatter (summed by {@link #next}), else one. */
    private final CompletableFuture<?>[][] ring;
    private long submitted;
    private long finished;

    @SuppressWarnings("unchecked")
    DynamicPath(Scenario scenario, int window, boolean worker) {
        super(scenario, IdleMode.BLOCKING, window);
        this.ring = new CompletableFuture<?>[window][scenario == Scenario.SCATTER4 ? 4 : 1];
        this.kiln = Kiln.local();
        this.stages = new ActorRef[scenario.actors()];
        for (int i = 0; i < stages.length; i++) {
            int salt = i;
            stages[i] = worker ? kiln.actor(() -> new Stage(salt), ActorOptions.process("bench-worker"))
                    : kiln.actor(() -> new Stage(salt));
        }
        this.then = new Function[stages.length - 1];
        for (int i = 0; i < then.length; i++) {
            ActorRef<Stage> stage = stages[i + 1];
            then[i] = v -> kiln.call(stage, Stage::step, v);
        }
    }

    @Override
    void submit(long x) {
        CompletableFuture<?>[] futures = ring[(int) (submitted++ % window)];
        if (scenario == Scenario.SCATTER4) {
            for (int i = 0; i < 4; i++) {
                futures[i] = kiln.call(stages[i], Stage::step, x);
            }
            return;
        }
        futures[0] = switch (scenario) {
            case SINGLE, SCATTER4 -> kiln.call(stages[0], Stage::step, x);
            case CHAIN4 -> {
                CompletableFuture<Long> f = kiln.call(stages[0], Stage::step, x);
                for (Function<Long, CompletableFuture<Long>> step : then) {
                    f = f.thenCompose(step);
                }
                yield f;
            }
            case ARGS8 -> kiln.call(stages[0], Stage::mix8, x, Scenario.arg(x, 1), Scenario.arg(x, 2),
                    Scenario.arg(x, 3), Scenario.arg(x, 4), Scenario.arg(x, 5), Scenario.arg(x, 6), Scenario.arg(x, 7));
            case TENSOR_4K, TENSOR_1M, TENSOR_64M -> kiln.call(stages[0], Stage::touch, tensor);
        };
    }

    @Override
    long next() {
        CompletableFuture<?>[] futures = ring[(int) (finished++ % window)];
        long sum = 0;
        for (int i = 0; i < futures.length; i++) {
            sum += (Long) futures[i].join();
            futures[i] = null;
        }
        return sum;
    }

    @Override
    public void close() {
        kiln.close();
        super.close();
    }
}
