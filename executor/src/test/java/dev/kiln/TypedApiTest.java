package dev.kiln;

import dev.kiln.compiler.GraphCompileException;
import dev.kiln.cuda.CudaException;
import dev.kiln.cuda.NativeCallException;
import dev.kiln.cuda.NativeUnavailableException;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.WorkerNode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.KilnException;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.ToolProvider;
import java.net.URI;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The typed API: javac refuses a graph whose types do not fit (checked by compiling small sources with the JDK's
 * compiler against the test class path), constants, the input node's type, typed outputs, and the
 * {@link KilnException} family.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TypedApiTest {

    /** The imports and actors every source below starts with. */
    private static final String HEADER = """
            import dev.kiln.*;
            import dev.kiln.graph.*;
            import java.util.List;
            class Snippet {
                static final class Tokenizer {
                    int[] encode(String s) { return new int[s.length()]; }
                }
                static final class Model {
                    float[] forward(int[] ids, float scale) { return new float[ids.length]; }
                }
                static void run(Kiln kiln) throws Exception {
                    ActorRef<Tokenizer> tok = kiln.actor(Tokenizer::new);
                    ActorRef<Model> model = kiln.actor(Model::new);
                    InputNode<String> in = Graph.input();
            """;
    private static final String FOOTER = """
                }
            }
            """;

    @TempDir
    Path classes;

    /** @return javac's errors for a body placed in {@link #HEADER}'s method, with the test class path */
    private List<String> javacErrors(String body) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "the tests run on a JDK, which has javac");
        JavaFileObject source = new SimpleJavaFileObject(URI.create("string:///Snippet.java"), JavaFileObject.Kind.SOURCE) {
            @Override
            public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                return HEADER + body + FOOTER;
            }
        };
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        List<String> options = List.of("-classpath", System.getProperty("java.class.path"), "-proc:none",
                "-d", classes.toString());
        javac.getTask(null, null, diagnostics, options, null, List.of(source)).call();
        return diagnostics.getDiagnostics().stream().filter(d -> d.getKind() == Diagnostic.Kind.ERROR)
                .map(d -> d.getMessage(null)).toList();
    }

    private void assertJavacRefuses(String body, String expected) {
        List<String> errors = javacErrors(body);
        assertEquals(1, errors.size(), () -> "one error expected, got " + errors);
        assertTrue(errors.getFirst().contains(expected), errors::toString);
    }

    @Test
    void theSnippetsCompileWhenTheTypesFit() {
        // The control for the refusals below: the same sources with fitting types compile without an error.
        assertEquals(List.of(), javacErrors("""
                Node<int[]> ids = tok.bind(Tokenizer::encode, in);
                Node<float[]> out = model.bind(Model::forward, ids, Graph.constant(0.5f));
                try (CompiledGraph<String, float[]> g = kiln.compile(in, out)) {
                    float[] y = g.execute("hi").get();
                }
                try (CompiledGraph<String, Tuple2<int[], float[]>> g = kiln.compile(in, Graph.outputs(ids, out))) {
                    int[] first = g.execute("hi").get().first();
                }
                InputNode2<String, Float> two = Graph.input2();
                Node<float[]> scaled = model.bind(Model::forward, tok.bind(Tokenizer::encode, two.first()), two.second());
                try (CompiledGraph<Tuple2<String, Float>, float[]> g = kiln.compile(two, scaled)) {
                    float[] y = g.execute(new Tuple2<>("hi", 2f)).get();
                }
                """));
    }

    @Test
    void theIssuesExampleIsAJavacError() {
        // Compiled and failed at run time with a ClassCastException blamed on the actor before the typed API.
        assertJavacRefuses("""
                CompiledGraph<Integer, int[]> g = kiln.compile(in, tok.bind(Tokenizer::encode, in));
                """, "incompatible types");
    }

    @Test
    void aWronglyTypedBindArgumentIsAJavacError() {
        assertJavacRefuses("""
                InputNode<Integer> numbers = Graph.input();
                Node<int[]> ids = tok.bind(Tokenizer::encode, numbers);
                """, "no suitable method found for bind");
    }

    @Test
    void aConstantOfTheWrongTypeIsAJavacError() {
        assertJavacRefuses("""
                Node<float[]> out = model.bind(Model::forward, tok.bind(Tokenizer::encode, in), Graph.constant("0.5"));
                """, "no suitable method found for bind");
    }

    @Test
    void aPlainObjectIsNoLongerABindArgument() {
        assertJavacRefuses("""
                Node<float[]> out = model.bind(Model::forward, tok.bind(Tokenizer::encode, in), 0.5f);
                """, "no suitable method found for bind");
    }

    @Test
    void aTupleOutputIsTypedPerComponent() {
        assertJavacRefuses("""
                Node<int[]> ids = tok.bind(Tokenizer::encode, in);
                CompiledGraph<String, Tuple2<float[], int[]>> g = kiln.compile(in, Graph.outputs(ids, ids));
                """, "incompatible types");
    }

    /** Test actors. */
    static final class Calc {
        int add(int a, int b) {
            return a + b;
        }

        String label(String prefix, int n) {
            return prefix + n;
        }

        int fail(int x) {
            throw new IllegalStateException("no " + x);
        }
    }

    @Test
    void constantsTuplesAndListsAtRunTime() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            InputNode2<Integer, String> in = Graph.input2();
            Node<Integer> sum = a.bind(Calc::add, in.first(), Graph.constant(10));
            Node<String> label = b.bind(Calc::label, in.second(), sum);
            try (CompiledGraph<Tuple2<Integer, String>, Tuple2<Integer, String>> g = kiln.compile(in,
                    Graph.outputs(sum, label))) {
                for (int i = 0; i < 100; i++) {
                    Tuple2<Integer, String> r = g.execute(new Tuple2<>(i, "n=")).get(10, TimeUnit.SECONDS);
                    assertEquals(i + 10, r.first());
                    assertEquals("n=" + (i + 10), r.second());
                }
            }
            InputNode<Integer> x = Graph.input();
            List<Node<Integer>> parts = List.of(a.bind(Calc::add, x, Graph.constant(1)),
                    b.bind(Calc::add, x, Graph.constant(2)));
            try (CompiledGraph<Integer, List<Integer>> g = kiln.compile(x, Graph.outputs(parts))) {
                List<Integer> r = g.execute(5).get(10, TimeUnit.SECONDS);
                assertEquals(List.of(6, 7), r);
                assertThrows(UnsupportedOperationException.class, () -> r.set(0, 1), "the result list is read-only");
            }
        }
    }

    @Test
    void compileRefusesAnotherInputNode() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            InputNode<Integer> built = Graph.input();
            InputNode<Integer> other = Graph.input();
            Node<Integer> out = a.bind(Calc::add, built, built);
            GraphCompileException e = assertThrows(GraphCompileException.class, () -> kiln.compile(other, out));
            assertEquals("calc.add: the output reads another input node than the one passed to compile; pass the "
                    + "Graph.input() node the graph was built on", e.getMessage().replaceFirst("^\\S+\\.add", "calc.add"));
            assertThrows(IllegalArgumentException.class, () -> Graph.constant(built),
                    "a node is bound as itself, not as a constant");
        }
    }

    @Test
    void oneCatchCatchesWhatKilnThrows() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Calc::fail, in));
            KilnException task = assertThrows(KilnException.class, () -> g.execute(1).get(10, TimeUnit.SECONDS));
            assertInstanceOf(ActorTaskException.class, task);
            assertInstanceOf(IllegalStateException.class, task.getCause(), "the actor's own exception is the cause");
            g.close();
            assertInstanceOf(GraphClosedException.class, assertThrows(KilnException.class, () -> g.execute(1)));
            InputNode<Integer> in2 = Graph.input();
            Node<Integer> unreached = a.bind(Calc::add, in2, in2);
            a.bind(Calc::fail, unreached); // never used: compile refuses the graph
            assertInstanceOf(GraphCompileException.class,
                    assertThrows(KilnException.class, () -> kiln.compile(in2, unreached)));
        }
    }

    @Test
    void everyPublicExceptionIsAKilnException() {
        List<Class<?>> family = List.of(GraphCompileException.class, ActorCreationException.class,
                ActorTaskException.class, RemoteActorException.class, ActorDiedException.class,
                ChannelTimeoutException.class, CapacityExceededException.class, GraphClosedException.class,
                GraphRestartedException.class, NativeCallException.class,
                CudaException.class, NativeUnavailableException.class, RemoteHost.WorkerDeathException.class,
                WorkerNode.JoinFailedException.class);
        for (Class<?> type : family) {
            assertTrue(KilnException.class.isAssignableFrom(type), type + " extends KilnException");
        }
    }
}
