package dev.kiln.micrometer;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphStatistics;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;

import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;
import java.util.function.ToLongFunction;

/**
 * Binds a compiled graph's {@link CompiledGraph#statistics() statistics} to a Micrometer {@link MeterRegistry}:
 * {@code kiln.graph.executions}, {@code kiln.graph.failures} (function counters), {@code kiln.graph.inflight}
 * (gauge) and {@code kiln.graph.latency} (function timer) tagged {@code graph}; per method of each actor in the
 * driver's JVM {@code kiln.actor.method.latency} (function timer) and {@code kiln.actor.method.failures} tagged
 * {@code graph}, {@code actor}, {@code method}; per actor {@code kiln.actor.queued} (gauge). Each meter reads a
 * fresh snapshot when the registry polls it. Actor meters are those of the actors the graph had at {@link #bindTo}.
 * A timer's count is every execution (or call); its total time is the histogram's, in which each timed call (one in
 * 8) stands for the untimed ones before it: it only grows, as a Micrometer total must.
 */
public final class KilnGraphMetrics implements MeterBinder {

    private final CompiledGraph<?, ?> graph;

    /**
     * @param graph a graph compiled with statistics on (the default)
     */
    public KilnGraphMetrics(CompiledGraph<?, ?> graph) {
        this.graph = graph;
    }

    /**
     * Registers the meters.
     *
     * @param registry where
     * @throws IllegalStateException if the graph keeps no statistics ({@code CompileOptions.statistics(false)})
     */
    @Override
    public void bindTo(MeterRegistry registry) {
        GraphStatistics first = graph.statistics();
        Tags tags = Tags.of("graph", first.graph());
        FunctionCounter.builder("kiln.graph.executions", graph, g -> g.statistics().executions())
                .description("executions finished").tags(tags).register(registry);
        FunctionCounter.builder("kiln.graph.failures", graph, g -> g.statistics().failures())
                .description("executions in which an actor method threw").tags(tags).register(registry);
        Gauge.builder("kiln.graph.inflight", graph, g -> g.statistics().inFlight())
                .description("executions submitted and not yet collected").tags(tags).register(registry);
        timer(registry, "kiln.graph.latency", "from execute to the result's collection", tags,
                g -> g.statistics().executions(), g -> g.statistics().latency().totalNanos());
        for (GraphStatistics.ActorStatistics a : first.actors()) {
            String actor = a.actor();
            Tags actorTags = tags.and("actor", actor);
            Gauge.builder("kiln.actor.queued", graph, g -> actor(g, actor) == null ? 0 : actor(g, actor).queued())
                    .description("executions this actor has not finished yet").tags(actorTags).register(registry);
            for (GraphStatistics.MethodStatistics m : a.methods()) {
                String method = m.method();
                Tags methodTags = actorTags.and("method", method);
                timer(registry, "kiln.actor.method.latency", "calls of an actor method on the actor's thread",
                        methodTags, g -> method(g, actor, method).calls(),
                        g -> method(g, actor, method).latency().totalNanos());
                FunctionCounter.builder("kiln.actor.method.failures", graph,
                                g -> (double) method(g, actor, method).failures())
                        .description("calls of an actor method that threw").tags(methodTags).register(registry);
            }
        }
    }

    private void timer(MeterRegistry registry, String name, String description, Tags tags,
                       ToLongFunction<CompiledGraph<?, ?>> count, ToDoubleFunction<CompiledGraph<?, ?>> totalNanos) {
        FunctionTimer.builder(name, graph, count, totalNanos, TimeUnit.NANOSECONDS).description(description)
                .tags(tags).register(registry);
    }

    private static GraphStatistics.ActorStatistics actor(CompiledGraph<?, ?> g, String actor) {
        return g.statistics().actors().stream().filter(a -> a.actor().equals(actor)).findFirst().orElse(null);
    }

    private static GraphStatistics.MethodStatistics method(CompiledGraph<?, ?> g, String actor, String method) {
        GraphStatistics.ActorStatistics a = actor(g, actor);
        GraphStatistics.MethodStatistics none = new GraphStatistics.MethodStatistics(method, 0, 0,
                dev.kiln.LatencyHistogram.empty());
        return a == null ? none : a.methods().stream().filter(m -> m.method().equals(method)).findFirst().orElse(none);
    }
}
