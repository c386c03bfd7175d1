package dev.kiln.integration;

import dev.kiln.KilnWorker;
import org.apache.pekko.Done;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.CoordinatedShutdown;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * The embedded-worker recipe of docs/integrations.md: a Pekko actor system hosts a {@link KilnWorker} for as long as
 * it lives. The worker joins when the system's service starts, and leaves in the system's
 * {@link CoordinatedShutdown} (phase {@code before-actor-system-terminate}, after the service stopped taking requests),
 * so the driver sees a worker that left rather than one that vanished.
 */
final class EmbeddedKilnWorker {

    private EmbeddedKilnWorker() {
    }

    /**
     * Joins the driver and ties the worker's end to the actor system's shutdown.
     *
     * @param system  the runtime that hosts the worker
     * @param options how to join
     * @return the joined worker
     */
    static KilnWorker start(ActorSystem system, KilnWorker.Options options) {
        KilnWorker worker = KilnWorker.join(options);
        CoordinatedShutdown.get(system).addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(), "leave-kiln",
                () -> CompletableFuture.supplyAsync(() -> {
                    worker.close(); // stops the actors here; the driver fails the graphs that used them
                    try {
                        worker.awaitTermination(Duration.ofSeconds(10));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return Done.done();
                }));
        return worker;
    }
}
