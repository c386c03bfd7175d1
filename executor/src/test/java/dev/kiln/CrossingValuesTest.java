package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Values cross JVMs as they pass in one: primitive arrays, boxed primitives, strings and the JDK's collections without
 * registration, the user's records and enums with one registration call each; what cannot cross is refused at compile.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CrossingValuesTest {

    private static final CompileOptions OPTIONS = CompileOptions.defaults().idle(IdleMode.BACKOFF)
            .getTimeout(Duration.ofSeconds(60)).submitTimeout(Duration.ofSeconds(60));

    /** A user record. */
    public record Token(String text, int id) {
    }

    /** A user enum, one constant with a body of its own. */
    public enum Kind {
        WORD, NUMBER {
            @Override
            public String toString() {
                return "number";
            }
        }
    }

    /** Tokenizes as a first-hour user's actor would. */
    public static final class Tokenizer {
        public int[] encode(String s) {
            return s.chars().toArray();
        }

        public float[] embed(int[] ids) {
            float[] out = new float[ids.length];
            for (int i = 0; i < ids.length; i++) {
                out[i] = ids[i] / 2f;
            }
            return out;
        }

        public List<String> words(String s) {
            return List.of(s.split(" "));
        }

        public Map<String, Integer> lengths(List<String> words) {
            Map<String, Integer> m = new java.util.HashMap<>();
            words.forEach(w -> m.put(w, w.length()));
            return m;
        }

        public Set<Integer> distinct(Map<String, Integer> lengths) {
            return new TreeSet<>(lengths.values());
        }

        public Optional<Long> first(Set<Integer> s) {
            return s.stream().findFirst().map(Integer::longValue);
        }

        public Token token(String s) {
            return new Token(s, s.length());
        }

        public Kind kind(Token t) {
            return t.text().chars().allMatch(Character::isDigit) ? Kind.NUMBER : Kind.WORD;
        }

        public ReentrantLock lock(String s) {
            return new ReentrantLock();
        }
    }

    @Test
    void jdkValuesCrossWithoutRegistrationAndRegisteringThemIsHarmless() throws Exception {
        // int[] and String need no registration; registering them changes nothing (it used to throw from Fory).
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().register(int[].class, String.class, float[].class))) {
            ActorRef<Tokenizer> a = kiln.actor(Tokenizer::new, ActorOptions.process("a"));
            ActorRef<Tokenizer> b = kiln.actor(Tokenizer::new);
            InputNode<String> in = Graph.input();
            Node<int[]> ids = a.bind(Tokenizer::encode, in);             // worker -> driver JVM
            Node<float[]> embedded = a.bind(Tokenizer::embed, b.bind(Tokenizer::encode, in)); // driver -> worker
            Node<List<String>> words = a.bind(Tokenizer::words, in);
            Node<Map<String, Integer>> lengths = b.bind(Tokenizer::lengths, words);
            Node<Set<Integer>> distinct = a.bind(Tokenizer::distinct, lengths);
            Node<Optional<Long>> first = b.bind(Tokenizer::first, distinct);
            try (CompiledGraph<String, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(ids, embedded, words, lengths, distinct,
                    first)), OPTIONS)) {
                for (int i = 0; i < 3; i++) {
                    Object[] r = g.execute("ab cde f" + i).get().toArray();
                    assertArrayEquals("ab cde f".concat(Integer.toString(i)).chars().toArray(), (int[]) r[0]);
                    assertArrayEquals(new float[] {97 / 2f, 98 / 2f, 32 / 2f, 99 / 2f, 100 / 2f, 101 / 2f, 32 / 2f,
                            102 / 2f, ('0' + i) / 2f}, (float[]) r[1]);
                    assertEquals(List.of("ab", "cde", "f" + i), r[2]);
                    assertEquals(Map.of("ab", 2, "cde", 3, "f" + i, 2), r[3]);
                    assertEquals(Set.of(2, 3), r[4]);
                    assertEquals(Optional.of(2L), r[5]);
                }
            }
        }
    }

    @Test
    void userRecordsAndEnumsCrossWithOneRegistrationEach() throws Exception {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().register(Token.class, Kind.class))) {
            ActorRef<Tokenizer> a = kiln.actor(Tokenizer::new, ActorOptions.process("a"));
            ActorRef<Tokenizer> b = kiln.actor(Tokenizer::new);
            InputNode<String> in = Graph.input();
            Node<Token> token = a.bind(Tokenizer::token, in);
            Node<Kind> kind = b.bind(Tokenizer::kind, token);
            try (CompiledGraph<String, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(token, kind,
                    a.bind(Tokenizer::kind, b.bind(Tokenizer::token, in)))), OPTIONS)) {
                assertArrayEquals(new Object[] {new Token("42", 2), Kind.NUMBER, Kind.NUMBER}, g.execute("42").get().toArray());
                assertArrayEquals(new Object[] {new Token("x", 1), Kind.WORD, Kind.WORD}, g.execute("x").get().toArray());
            }
        }
    }

    @Test
    void compileRefusesWhatCannotCrossNamingTheEdgeTheTypeAndWhatToDo() {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().register(Token.class))) {
            ActorRef<Tokenizer> a = kiln.actor(Tokenizer::new, ActorOptions.process("a"));
            ActorRef<Tokenizer> b = kiln.actor(Tokenizer::new);
            InputNode<String> in = Graph.input();
            GraphCompileException e = assertThrows(GraphCompileException.class,
                    () -> kiln.compile(in, a.bind(Tokenizer::kind, b.bind(Tokenizer::token, in)), OPTIONS));
            assertTrue(e.getMessage().startsWith("Tokenizer.kind: the result of Tokenizer.kind (declared "
                    + Kind.class.getName() + ") goes to another JVM through c"), e.getMessage());
            assertTrue(e.getMessage().endsWith(", but it cannot cross: " + Kind.class.getName() + " is not registered;"
                    + " register it for every JVM of the runtime:"
                    + " Kiln.local(KilnOptions.defaults().register(CrossingValuesTest.Kind.class))"), e.getMessage());
            // A refused graph leaves its calls bound to their actors and input: the next takes others.
            ActorRef<Tokenizer> d = kiln.actor(Tokenizer::new, ActorOptions.process("a"));
            InputNode<String> in2 = Graph.input();
            e = assertThrows(GraphCompileException.class, () -> kiln.compile(in2, d.bind(Tokenizer::lock, in2), OPTIONS));
            assertTrue(e.getMessage().startsWith("Tokenizer.lock: the result of Tokenizer.lock (declared "
                    + ReentrantLock.class.getName() + ") goes to another JVM through c1, but it cannot cross: a "
                    + "java.util.concurrent.locks.Lock belongs to the JVM that made it"), e.getMessage());
            // The same graph in one JVM compiles and runs: nothing crosses.
            ActorRef<Tokenizer> c = kiln.actor(Tokenizer::new);
            ActorRef<Tokenizer> c2 = kiln.actor(Tokenizer::new);
            InputNode<String> in3 = Graph.input();
            try (CompiledGraph<String, Kind> g = kiln.compile(in3, c.bind(Tokenizer::kind, c2.bind(Tokenizer::token, in3)),
                    OPTIONS)) {
                assertEquals(Kind.WORD, g.execute("w").get());
            } catch (Exception x) {
                throw new AssertionError(x);
            }
        }
    }
}
