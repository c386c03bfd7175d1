package dev.kiln.bench;

import com.typesafe.config.ConfigFactory;
import dev.kiln.compiler.IdleMode;
import dev.kiln.tensor.Tensor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Apache Pekko typed actors with the ask pattern, on Pekko's default dispatcher (a fork-join
 * pool whose idle threads park). One ask per execution from the JMH thread: a chain forwards
 * the message actor to actor ({@code tell}) and the last actor replies; a scatter is four
 * asks. This is the idiomatic actor pipeline, the fastest fair use of Pekko, not one ask per hop.
 */
final class PekkoPath extends Path {

    private static final Duration TIMEOUT = Duration.ofSeconds(10);

    /** The messages a stage actor takes. */
    sealed interface Msg permits Step, Mix8, Touch {
    }

    /** Run {@code step(x)}, then pass the result on, or reply with it at the end of the chain. */
    record Step(long x, ActorRef<Long> replyTo) implements Msg {
    }

    /** Run {@code mix8} and reply. */
    record Mix8(long a, long b, long c, long d, long e, long f, long g, long h, ActorRef<Long> replyTo) implements Msg {
    }

    /** Run {@code touch} and reply. */
    record Touch(Tensor t, ActorRef<Long> replyTo) implements Msg {
    }

    private final ActorSystem<Void> system;
    private final ActorRef<Msg>[] actors;
    /** Per execution in flight, its futures: four for a scatter (summed by {@link #next}), else one. */
    private final CompletableFuture<?>[][] ring;
    private long submitted;
    private long finished;

    @SuppressWarnings("unchecked")
    PekkoPath(Scenario scenario, int window) {
        super(scenario, IdleMode.BLOCKING, window);
        this.ring = new CompletableFuture<?>[window][scenario == Scenario.SCATTER4 ? 4 : 1];
        this.system = ActorSystem.create(Behaviors.empty(), "bench", ConfigFactory.parseString("""
                pekko.loglevel = WARNING
                pekko.log-dead-letters = off
                pekko.log-dead-letters-during-shutdown = off
                """).withFallback(ConfigFactory.load()));
        this.actors = new ActorRef[scenario.actors()];
        // A chain is built from its end, so each actor knows the next.
        for (int i = actors.length - 1; i >= 0; i--) {
            ActorRef<Msg> next = scenario == Scenario.CHAIN4 && i < actors.length - 1 ? actors[i + 1] : null;
            actors[i] = system.systemActorOf(stage(new Stage(i), next), "stage-" + i, Props.empty());
        }
    }

    private static Behavior<Msg> stage(Stage stage, ActorRef<Msg> next) {
        return Behaviors.receiveMessage(m -> {
            switch (m) {
                case Step s -> {
                    long y = stage.step(s.x());
                    if (next != null) {
                        next.tell(new Step(y, s.replyTo()));
                    } else {
                        s.replyTo().tell(y);
                    }
                }
                case Mix8 a -> a.replyTo().tell(stage.mix8(a.a(), a.b(), a.c(), a.d(), a.e(), a.f(), a.g(), a.h()));
                case Touch t -> t.replyTo().tell(stage.touch(t.t()));
            }
            return Behaviors.same();
        });
    }

    private CompletableFuture<Long> ask(ActorRef<Msg> actor, org.apache.pekko.japi.function.Function<ActorRef<Long>, Msg> message) {
        return AskPattern.ask(actor, message, TIMEOUT, system.scheduler()).toCompletableFuture();
    }

    @Override
    void submit(long x) {
        CompletableFuture<?>[] futures = ring[(int) (submitted++ % window)];
        switch (scenario) {
            case SINGLE, CHAIN4 -> futures[0] = ask(actors[0], r -> new Step(x, r));
            case SCATTER4 -> {
                for (int i = 0; i < 4; i++) {
                    futures[i] = ask(actors[i], r -> new Step(x, r));
                }
            }
            case ARGS8 -> futures[0] = ask(actors[0], r -> new Mix8(x, Scenario.arg(x, 1), Scenario.arg(x, 2),
                    Scenario.arg(x, 3), Scenario.arg(x, 4), Scenario.arg(x, 5), Scenario.arg(x, 6), Scenario.arg(x, 7), r));
            case TENSOR_4K, TENSOR_1M, TENSOR_64M -> futures[0] = ask(actors[0], r -> new Touch(tensor, r));
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
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            throw new IllegalStateException("the Pekko actor system did not terminate within 10 s", e);
        } finally {
            super.close();
        }
    }
}
