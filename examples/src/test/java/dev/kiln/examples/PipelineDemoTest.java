package dev.kiln.examples;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(180)
class PipelineDemoTest {

    private static final int SIZE = 256;
    private static final int EXECUTIONS = 200;

    @Test
    void compiledAndDynamicEqualTheSequentialComputation() {
        float[][] inputs = PipelineDemo.inputs(16, SIZE, 7);
        float[][] expected = new float[inputs.length][];
        for (int k = 0; k < inputs.length; k++) {
            expected[k] = PipelineDemo.sequential(inputs[k]);
            float sum = 0;
            for (float p : expected[k]) {
                sum += p;
            }
            assertEquals(1f, sum, 1e-3f, "a softmax sums to 1");
        }
        assertNotEquals(expected[0][0], expected[1][0], "different inputs give different outputs");
        try (Kiln kiln = Kiln.local()) {
            PipelineDemo.Stages stages = PipelineDemo.Stages.create(kiln, SIZE);
            CompileOptions options = CompileOptions.defaults().maxInflight(PipelineDemo.WINDOW);
            InputNode<float[]> in = Graph.input();
            try (CompiledGraph<float[], float[]> g = kiln.compile(in, stages.bind(in), options)) {
                for (int i = 0; i < EXECUTIONS; i++) {
                    float[] out = g.execute(inputs[i % inputs.length]).get(10, TimeUnit.SECONDS);
                    assertArrayEquals(expected[i % inputs.length], out, "compiled, one at a time, execution " + i);
                }
                // Pipelined: a full window in flight, read back in order.
                List<GraphFuture<float[]>> futures = new ArrayList<>();
                for (int i = 0; i < EXECUTIONS; i++) {
                    if (futures.size() == PipelineDemo.WINDOW) {
                        int done = i - PipelineDemo.WINDOW;
                        assertArrayEquals(expected[done % inputs.length], futures.removeFirst().get(10, TimeUnit.SECONDS),
                                "compiled, pipelined, execution " + done);
                    }
                    futures.add(g.execute(inputs[i % inputs.length]));
                }
                for (int i = EXECUTIONS - futures.size(); i < EXECUTIONS; i++) {
                    assertArrayEquals(expected[i % inputs.length], futures.removeFirst().get(10, TimeUnit.SECONDS),
                            "compiled, pipelined, execution " + i);
                }
            }
            List<CompletableFuture<float[]>> dynamic = new ArrayList<>();
            for (int i = 0; i < EXECUTIONS; i++) {
                dynamic.add(stages.call(kiln, inputs[i % inputs.length]));
            }
            for (int i = 0; i < EXECUTIONS; i++) {
                assertArrayEquals(expected[i % inputs.length], dynamic.get(i).orTimeout(10, TimeUnit.SECONDS).join(),
                        "dynamic, execution " + i);
            }
        }
    }

    /**
     * The README's demo itself, through its entry point with a short run, under a JFR recording and with
     * {@code --trace}: the recording holds Kiln's events for the demo's graph and its four actors, and the trace is
     * valid JSON with one track per actor.
     */
    @Test
    void theDemosJfrRecordingShowsKilnsEventsAndItsTraceHasOneTrackPerActor(@TempDir Path dir) throws Exception {
        int executions = 200;
        Path jfr = dir.resolve("demo.jfr");
        Path traceFile = dir.resolve("demo-trace.json");
        String printed;
        try (Recording recording = new Recording()) {
            for (String e : List.of("dev.kiln.Execution", "dev.kiln.ActorOperation", "dev.kiln.ChannelWait")) {
                recording.enable(e).withThreshold(Duration.ZERO);
            }
            recording.start();
            PrintStream out = System.out;
            ByteArrayOutputStream captured = new ByteArrayOutputStream();
            System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
            try {
                PipelineDemo.main(new String[] {"--executions", Integer.toString(executions), "--warmup-ms", "0",
                    "--trace", traceFile.toString()});
            } finally {
                System.setOut(out);
                out.print(captured.toString(StandardCharsets.UTF_8));
            }
            printed = captured.toString(StandardCharsets.UTF_8);
            recording.stop();
            recording.dump(jfr);
        }
        Map<String, List<RecordedEvent>> byType = new HashMap<>();
        for (RecordedEvent e : RecordingFile.readAllEvents(jfr)) {
            byType.computeIfAbsent(e.getEventType().getName(), k -> new ArrayList<>()).add(e);
        }
        // one warm-up round (one at a time and pipelined: --warmup-ms 0) and the measured runs, both ways: every
        // execution of the demo's graph
        int warmup = Math.max(executions / 2, 200);
        List<RecordedEvent> runs = byType.getOrDefault("dev.kiln.Execution", List.of());
        assertEquals(2 * (warmup + executions), runs.size(), "an Execution event per execution of the demo's graph");
        assertTrue(runs.stream().noneMatch(e -> e.getBoolean("failed")));
        Map<String, Long> computes = new TreeMap<>();
        for (RecordedEvent e : byType.getOrDefault("dev.kiln.ActorOperation", List.of())) {
            if ("compute".equals(e.getString("operation"))) {
                String method = e.getString("method");
                computes.merge(method.substring(method.lastIndexOf('$') + 1), 1L, Long::sum);
            }
        }
        long each = 2L * (warmup + executions);
        assertEquals(Map.of("Affine.apply", each, "Normalize.apply", each, "Smooth.apply", each, "Softmax.apply", each),
                computes, "a compute event per stage method and execution");
        assertNotNull(byType.get("dev.kiln.ChannelWait"), "the stages wait on their channels");
        Matcher loads = Pattern.compile("time in methods per execution \\(statistics\\):(( [a-z0-9-]+ [0-9.]+ us,?)+); "
                + "at most [0-9,]+ executions/s \\((the slowest stage, [a-z0-9-]+|[0-9.]+ us over [0-9]+ threads)\\)")
                .matcher(printed);
        assertTrue(loads.find(), "the demo prints each stage's time in its method:\n" + printed);
        List<String> stages = new ArrayList<>();
        Matcher stage = Pattern.compile(" ([a-z0-9-]+) [0-9.]+ us").matcher(loads.group(1));
        while (stage.find()) {
            stages.add(stage.group(1));
        }
        assertEquals(4, Set.copyOf(stages).size(), "each of the 4 actors once: " + loads.group(1));
        assertEquals(4, stages.size(), "each of the 4 actors once: " + loads.group(1));

        JsonObject trace = JsonParser.parseString(Files.readString(traceFile)).getAsJsonObject();
        Map<Integer, String> tracks = new HashMap<>();
        Map<String, Integer> spans = new TreeMap<>();
        List<JsonObject> slices = new ArrayList<>();
        for (JsonElement el : trace.getAsJsonArray("traceEvents")) {
            JsonObject e = el.getAsJsonObject();
            if ("thread_name".equals(e.get("name").getAsString())) {
                assertEquals(null, tracks.put(e.get("tid").getAsInt(), e.getAsJsonObject("args").get("name").getAsString()),
                        "one name per track");
            } else if ("X".equals(e.get("ph").getAsString())) {
                slices.add(e);
            }
        }
        for (JsonObject e : slices) {
            String track = tracks.get(e.get("tid").getAsInt());
            assertNotNull(track, "every span is on a named track: " + e);
            spans.merge(track, 1, Integer::sum);
        }
        assertEquals(5, tracks.size(), "the executions and one track per actor: " + tracks);
        assertTrue(tracks.values().contains("executions (driver)"), tracks.toString());
        assertEquals(4, tracks.values().stream().filter(t -> t.startsWith("actor ")).count(), tracks.toString());
        assertEquals(Set.copyOf(tracks.values()), spans.keySet(), "every track has spans");
        spans.values().forEach(n -> assertEquals(executions, n, "a span per traced execution on each track: " + spans));
    }
}
