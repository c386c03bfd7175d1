package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** JFR events, statistics, trace export and thread names of a compiled graph. */
@Timeout(120)
class ObservabilityTest {

    /** Parses text; fails on multiples of five. Remembers the name of the thread that created it. */
    static final class Parser {
        final String threadAtCreation = Thread.currentThread().getName();

        String creator() {
            return threadAtCreation;
        }

        int parse(int x) {
            if (x % 5 == 0) {
                throw new IllegalArgumentException("no " + x);
            }
            return x * 2;
        }
    }

    /** Adds one. */
    static final class Model {
        final String threadAtCreation = Thread.currentThread().getName();

        String creator() {
            return threadAtCreation;
        }

        int forward(int x) {
            return x + 1;
        }
    }

    @Test
    void actorThreadsHaveTheirNamesBeforeTheyStart() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Parser> p = kiln.actor(Parser::new);
            ActorRef<Model> m = kiln.actor(() -> new Model());
            assertEquals("kiln-actor-" + p.name(), kiln.call(p, Parser::creator).get(),
                    "the thread had its final name when the factory ran");
            assertEquals("kiln-actor-" + m.name(), kiln.call(m, Model::creator).get());
            assertTrue(p.name().startsWith("parser-"), p.name());
            assertTrue(m.name().startsWith("model-"), m.name());
        }
    }

    @Test
    void aJfrRecordingShowsExecutionsActorOperationsAndChannelWaits(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("kiln.jfr");
        try (Kiln kiln = Kiln.local(); Recording recording = new Recording()) {
            for (String e : List.of("dev.kiln.Execution", "dev.kiln.ActorOperation", "dev.kiln.ChannelWait")) {
                recording.enable(e).withThreshold(Duration.ZERO);
            }
            recording.start();
            ActorRef<Parser> p = kiln.actor(Parser::new);
            ActorRef<Model> m = kiln.actor(Model::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = m.bind(Model::forward, p.bind(Parser::parse, in));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out)) {
                for (int i = 1; i <= 4; i++) {
                    assertEquals(2 * i + 1, g.execute(i).get(10, TimeUnit.SECONDS));
                }
                assertThrows(ActorTaskException.class, () -> g.execute(5).get(10, TimeUnit.SECONDS));
            }
            recording.stop();
            recording.dump(file);
            List<RecordedEvent> events = RecordingFile.readAllEvents(file);
            Map<String, List<RecordedEvent>> byType = events.stream()
                    .collect(Collectors.groupingBy(e -> e.getEventType().getName()));
            List<RecordedEvent> executions = byType.getOrDefault("dev.kiln.Execution", List.of());
            assertEquals(5, executions.size(), "one event per execution");
            assertEquals(1, executions.stream().filter(e -> e.getBoolean("failed")).count());
            assertTrue(executions.stream().allMatch(e -> e.getString("graph").startsWith("graph-")));
            assertEquals("Kiln", executions.getFirst().getEventType().getCategoryNames().getFirst());

            List<RecordedEvent> ops = byType.getOrDefault("dev.kiln.ActorOperation", List.of());
            Map<String, Long> computes = ops.stream().filter(e -> "compute".equals(e.getString("operation")))
                    .collect(Collectors.groupingBy(e -> e.getString("actor") + " " + e.getString("method"),
                            Collectors.counting()));
            assertEquals(Map.of(p.name() + " ObservabilityTest$Parser.parse", 5L,
                    m.name() + " ObservabilityTest$Model.forward", 5L), rename(computes),
                    "a compute event per compute step, with the actor and the method (execution 5's forward is "
                            + "skipped, as its input failed, and shows as a short step)");
            Set<String> kinds = ops.stream().map(e -> e.getString("operation")).collect(Collectors.toSet());
            assertEquals(Set.of("read", "compute", "write"), kinds);
            assertTrue(ops.stream().filter(e -> e.getString("actor").equals(m.name()))
                            .allMatch(e -> e.getThread().getJavaName().equals("kiln-actor-" + m.name())),
                    "events come from the actor's thread, under its final name");

            List<RecordedEvent> waits = byType.getOrDefault("dev.kiln.ChannelWait", List.of());
            assertTrue(waits.stream().anyMatch(e -> e.getString("actor").equals(m.name())
                    && e.getString("side").equals("read")), "the model waits for the parser's results: " + waits);
        }
    }

    /** Method display names may use the simple or the nested class name: keep what follows the last '.' or '$'. */
    private static Map<String, Long> rename(Map<String, Long> computes) {
        Map<String, Long> r = new HashMap<>();
        computes.forEach((k, v) -> {
            String[] parts = k.split(" ");
            String method = parts[1];
            String cls = method.substring(0, method.lastIndexOf('.'));
            String simple = cls.substring(Math.max(cls.lastIndexOf('.'), cls.lastIndexOf('$')) + 1);
            r.put(parts[0] + " ObservabilityTest$" + simple + method.substring(method.lastIndexOf('.')), v);
        });
        return r;
    }

    @Test
    void statisticsCountEveryExecutionFailureAndCall() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Parser> p = kiln.actor(Parser::new);
            ActorRef<Model> m = kiln.actor(Model::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = m.bind(Model::forward, p.bind(Parser::parse, in));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, CompileOptions.defaults().maxInflight(4))) {
                int n = 53;
                for (int i = 0; i < n; i++) {
                    try {
                        g.execute(i).get(10, TimeUnit.SECONDS);
                    } catch (ActorTaskException expected) {
                        assertEquals(0, i % 5);
                    }
                }
                GraphStatistics s = g.statistics();
                assertEquals(n, s.submitted());
                assertEquals(n, s.executions());
                assertEquals(11, s.failures(), "0, 5, ..., 50 fail");
                assertEquals(0, s.inFlight());
                assertEquals(4, s.maxInflight());
                // The first execution and then one in 8 are timed (0, 8, ..., 48), each standing for the untimed ones
                // before it: the histogram counts executions up to the last timed one.
                int counted = (n - 1) / 8 * 8 + 1;
                assertEquals(counted, s.latency().count());
                assertTrue(s.latency().percentileNanos(50) > 0);
                assertEquals(2, s.actors().size());
                GraphStatistics.ActorStatistics parser = s.actors().stream()
                        .filter(a -> a.actor().equals(p.name())).findFirst().orElseThrow();
                GraphStatistics.ActorStatistics model = s.actors().stream()
                        .filter(a -> a.actor().equals(m.name())).findFirst().orElseThrow();
                assertEquals(1, parser.methods().size());
                assertEquals(n, parser.methods().getFirst().calls());
                assertEquals(11, parser.methods().getFirst().failures());
                assertEquals(counted, parser.methods().getFirst().latency().count());
                assertTrue(parser.methods().getFirst().method().endsWith("parse"));
                assertEquals(n - 11, model.methods().getFirst().calls(), "skipped where the parser failed");
                assertEquals(0, model.methods().getFirst().failures());
                assertEquals(0, parser.queued());
                assertEquals(0, model.queued());
            }
            InputNode<Integer> in1 = Graph.input();
            try (CompiledGraph<Integer, Integer> off = kiln.compile(in1, m.bind(Model::forward, in1),
                    CompileOptions.defaults().statistics(false))) {
                assertEquals(2, off.execute(1).get(10, TimeUnit.SECONDS));
                IllegalStateException e = assertThrows(IllegalStateException.class, off::statistics);
                assertTrue(e.getMessage().contains("statistics(true)"), e.getMessage());
            }
        }
    }

    @Test
    void theTraceIsValidChromeJsonWithOneTrackPerActor(@TempDir Path dir) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Parser> p = kiln.actor(Parser::new);
            ActorRef<Model> m = kiln.actor(Model::new, ActorOptions.defaults().name("the \"model\""));
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = m.bind(Model::forward, p.bind(Parser::parse, in));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out)) {
                g.execute(1).get(10, TimeUnit.SECONDS);
                Path file = dir.resolve("trace.json");
                try (GraphTrace trace = g.startTrace(10)) {
                    assertThrows(IllegalStateException.class, () -> g.startTrace(1));
                    for (int i = 1; i <= 12; i++) {
                        try {
                            g.execute(i).get(10, TimeUnit.SECONDS);
                        } catch (ActorTaskException expected) {
                            assertEquals(0, i % 5);
                        }
                    }
                    assertTrue(trace.await(Duration.ofSeconds(10)));
                    assertEquals(10, trace.recorded());
                    trace.writeTo(file);
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> json = (Map<String, Object>) Json.parse(Files.readString(file));
                @SuppressWarnings("unchecked")
                List<Map<String, Object>> events = (List<Map<String, Object>>) json.get("traceEvents");
                Map<Double, String> tracks = new HashMap<>();
                for (Map<String, Object> e : events) {
                    if ("thread_name".equals(e.get("name"))) {
                        @SuppressWarnings("unchecked")
                        Map<String, Object> args = (Map<String, Object>) e.get("args");
                        assertEquals(null, tracks.put((Double) e.get("tid"), (String) args.get("name")),
                                "one name per track");
                    }
                }
                assertEquals(new TreeSet<String>(Set.of("executions (driver)", "actor " + p.name(), "actor the \"model\"")),
                        new TreeSet<>(tracks.values()));
                Map<String, Long> spans = events.stream().filter(e -> "X".equals(e.get("ph")))
                        .collect(Collectors.groupingBy(e -> tracks.get((Double) e.get("tid")), Collectors.counting()));
                assertEquals(10L, spans.get("executions (driver)"));
                assertEquals(10L, spans.get("actor " + p.name()), "one span per call, at most the window");
                assertEquals(10L, spans.get("actor the \"model\""));
                assertTrue(events.stream().filter(e -> "X".equals(e.get("ph")))
                        .allMatch(e -> (Double) e.get("dur") >= 0 && (Double) e.get("ts") >= 0 && e.get("pid") != null));
                assertFalse(events.stream().anyMatch(e -> "X".equals(e.get("ph")) && tracks.get((Double) e.get("tid"))
                        .equals("actor " + p.name()) && !((String) e.get("name")).endsWith("parse")));
            }
        }
    }
}
