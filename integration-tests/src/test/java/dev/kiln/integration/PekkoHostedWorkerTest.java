package dev.kiln.integration;

import dev.kiln.ActorDiedException;
import dev.kiln.ActorOptions;
import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.KilnWorker;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import org.apache.pekko.actor.ActorSystem;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A Pekko actor system (standing in for a Spark executor or a service) hosts a Kiln worker as part of its lifecycle
 * ({@link EmbeddedKilnWorker}); a driver in this JVM, listening on loopback, places an actor on it by label and runs
 * a graph through it. Shutting the actor system down must leave the driver with {@link ActorDiedException} for that
 * graph, and nothing else: no hang, no other exception type, and a graph that did not use the worker runs on.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class PekkoHostedWorkerTest {

    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final CompileOptions OPTIONS = CompileOptions.defaults().maxInflight(8).getTimeout(WAIT)
            .submitTimeout(WAIT);

    /** A stage that adds a constant. */
    public static final class Stage {
        private final int add;

        public Stage(int add) {
            this.add = add;
        }

        public int add(int x) {
            return x + add;
        }
    }

    @TempDir
    Path tmp;

    private byte[] secret;
    private Kiln kiln;

    @BeforeEach
    void startDriver() {
        secret = new byte[32];
        new SecureRandom().nextBytes(secret);
        kiln = Kiln.local(KilnOptions.defaults().hostName("driver-host").joinSecret(secret).listen("127.0.0.1:0")
                .workerTimeout(Duration.ofSeconds(3)).runDirectory(tmp.resolve("run-driver")));
    }

    @AfterEach
    void stopDriver() {
        kiln.close();
    }

    @Test
    void theActorSystemsShutdownFailsItsGraphsWithActorDiedAndNothingElse() throws Exception {
        ActorSystem system = ActorSystem.create("service");
        KilnWorker worker;
        try {
            worker = EmbeddedKilnWorker.start(system, KilnWorker.Options.of(kiln.joinEndpoint().orElseThrow(), secret)
                    .name("pekko-service").hostName("service-host").label("runtime", "pekko")
                    .runDirectory(tmp.resolve("run-service")).shmDirectory(Files.createDirectories(tmp.resolve("shm")))
                    .timeout(Duration.ofSeconds(3)));
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
        assertEquals("pekko-service", kiln.awaitWorkers(1, Duration.ofSeconds(90)).getFirst().name());

        ActorRef<Stage> local = kiln.actor(() -> new Stage(1));
        ActorRef<Stage> hosted = kiln.actor(() -> new Stage(100), ActorOptions.label("runtime", "pekko"));
        InputNode<Integer> in = Graph.input();
        CompiledGraph<Integer, Integer> throughWorker = kiln.compile(in,
                hosted.bind(Stage::add, local.bind(Stage::add, in)), OPTIONS);
        ActorRef<Stage> a = kiln.actor(() -> new Stage(2));
        ActorRef<Stage> b = kiln.actor(() -> new Stage(3));
        InputNode<Integer> in2 = Graph.input();
        CompiledGraph<Integer, Integer> driverOnly = kiln.compile(in2, b.bind(Stage::add, a.bind(Stage::add, in2)), OPTIONS);
        for (int i = 0; i < 200; i++) {
            assertEquals(i + 101, throughWorker.execute(i).get(WAIT));
            assertEquals(i + 5, driverOnly.execute(i).get(WAIT));
        }

        // Executions keep going through the worker while the actor system shuts down.
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong succeeded = new AtomicLong();
        Map<Class<?>, Throwable> failures = new ConcurrentHashMap<>();
        CompletableFuture<Void> load = CompletableFuture.runAsync(() -> {
            for (int i = 0; !stop.get(); i++) {
                int x = i;
                try {
                    throughWorker.executeAsync(x).whenComplete((r, e) -> {
                        if (e != null) {
                            Throwable cause = e instanceof java.util.concurrent.CompletionException ? e.getCause() : e;
                            failures.putIfAbsent(cause.getClass(), cause);
                        } else if (r == x + 101) {
                            succeeded.incrementAndGet();
                        } else {
                            failures.putIfAbsent(AssertionError.class, new AssertionError(x + " -> " + r));
                        }
                    }).get(WAIT.toSeconds(), TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    // recorded by whenComplete; submit again until told to stop
                } catch (RuntimeException e) {
                    failures.putIfAbsent(e.getClass(), e);
                } catch (Exception e) {
                    failures.putIfAbsent(e.getClass(), e);
                    return;
                }
            }
        });
        KilnTestWait.until("executions through the worker", () -> succeeded.get() >= 50);

        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertTrue(worker.awaitTermination(WAIT), "the worker ended with the actor system");
        assertFalse(worker.lostDriver(), "it left; the driver did not vanish");

        ActorDiedException died = assertThrows(ActorDiedException.class, () -> throughWorker.execute(7).get(WAIT));
        assertTrue(died.getMessage().contains("pekko-service"), died.getMessage());
        stop.set(true);
        load.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertTrue(failures.keySet().stream().allMatch(ActorDiedException.class::equals),
                "failures other than ActorDiedException: " + failures);
        assertTrue(failures.containsKey(ActorDiedException.class), "the load saw the worker go: " + failures);

        for (int i = 0; i < 200; i++) {
            assertEquals(i + 5, driverOnly.execute(i).get(WAIT), "the graph that did not use the worker runs on");
        }
        KilnTestWait.until("the driver forgets the worker",
                () -> kiln.hosts().stream().noneMatch(h -> h.name().equals("pekko-service")));
    }
}
