package dev.kiln.executor;

import dev.kiln.graph.Method1;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Calls submitted while the actor stops must run or fail, never stay pending forever. */
@Timeout(120)
class ActorThreadSubmitRaceTest {

    private static final Method1<Object, Long, Long> INC = (actor, x) -> x + 1;

    @Test
    void everyQueuedCallCompletesWhenTheThreadStops() throws InterruptedException {
        int lost = 0;
        for (int iteration = 0; iteration < 300; iteration++) {
            ActorThread actor = new ActorThread(iteration, "race-" + iteration, Object::new);
            Object instance = actor.created().join();
            List<CompletableFuture<Long>> futures = new ArrayList<>();
            CountDownLatch started = new CountDownLatch(1);
            Thread caller = Thread.ofPlatform().start(() -> {
                started.countDown();
                for (long n = 0; ; n++) {
                    DynamicCall<Long> call = new DynamicCall<>(INC, 1, instance, actor.name(), n, new Object[] {n});
                    futures.add(call.future());
                    if (!actor.submit(call)) {
                        call.abandon(actor.name(), actor.death()); // what Kiln.call does
                        return;
                    }
                }
            });
            started.await();
            LockSupport.parkNanos(50_000L * (iteration % 10));
            actor.stop(5_000);
            caller.join();
            // The actor's thread has ended: a call still pending now would never complete.
            lost += futures.stream().anyMatch(f -> !f.isDone()) ? 1 : 0;
        }
        assertEquals(0, lost, "iterations with a call left pending after the actor stopped");
    }
}
