package dev.kiln.bench;

import dev.kiln.compiler.IdleMode;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The plain-JDK baseline: one {@link Executors#newSingleThreadExecutor single-thread executor}
 * per actor and a {@link CompletableFuture} chain ({@code supplyAsync}, then
 * {@code thenApplyAsync} on the next actor's executor); a scatter is four {@code supplyAsync}.
 * Idle executor threads block (park).
 */
final class ExecutorPath extends Path {

    private final ExecutorService[] executors;
    private final Stage[] stages;
    /** Stage i + 1's step, run on executor i + 1. */
    private final Function<Long, Long>[] then;
    /** Per execution in flight, its futures: four for a scatter (summed by {@link #next}), else one. */
    private final CompletableFuture<?>[][] ring;
    private long submitted;
    private long finished;

    @SuppressWarnings("unchecked")
    ExecutorPath(Scenario scenario, int window) {
        super(scenario, IdleMode.BLOCKING, window);
        this.ring = new CompletableFuture<?>[window][scenario == Scenario.SCATTER4 ? 4 : 1];
        this.executors = new ExecutorService[scenario.actors()];
        this.stages = new Stage[executors.length];
        for (int i = 0; i < executors.length; i++) {
            String name = "executor-actor-" + i;
            executors[i] = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().name(name).daemon(true).unstarted(r));
            stages[i] = new Stage(i);
        }
        this.then = new Function[stages.length - 1];
        for (int i = 0; i < then.length; i++) {
            then[i] = stages[i + 1]::step;
        }
    }

    @Override
    void submit(long x) {
        CompletableFuture<?>[] futures = ring[(int) (submitted++ % window)];
        switch (scenario) {
            case SINGLE -> futures[0] = CompletableFuture.supplyAsync(() -> stages[0].step(x), executors[0]);
            case CHAIN4 -> {
                CompletableFuture<Long> f = CompletableFuture.supplyAsync(() -> stages[0].step(x), executors[0]);
                for (int i = 0; i < then.length; i++) {
                    f = f.thenApplyAsync(then[i], executors[i + 1]);
                }
                futures[0] = f;
            }
            case SCATTER4 -> {
                for (int i = 0; i < 4; i++) {
                    Stage s = stages[i];
                    futures[i] = CompletableFuture.supplyAsync(() -> s.step(x), executors[i]);
                }
            }
            case ARGS8 -> futures[0] = CompletableFuture.supplyAsync(() -> stages[0].mix8(x, Scenario.arg(x, 1),
                    Scenario.arg(x, 2), Scenario.arg(x, 3), Scenario.arg(x, 4), Scenario.arg(x, 5), Scenario.arg(x, 6),
                    Scenario.arg(x, 7)), executors[0]);
            case TENSOR_4K, TENSOR_1M, TENSOR_64M ->
                    futures[0] = CompletableFuture.supplyAsync(() -> stages[0].touch(tensor), executors[0]);
        }
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
        for (ExecutorService e : executors) {
            e.shutdownNow();
        }
        try {
            for (ExecutorService e : executors) {
                e.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        super.close();
    }
}
