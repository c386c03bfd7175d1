package dev.kiln.compiler;

import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Actor classes and helpers shared by the compiler tests. Nothing here is ever run by a test. */
final class TestActors {

    /** Stands for the runtime that hosts the actors. */
    static final Object RUNTIME = new Object() {
        @Override
        public String toString() {
            return "test-runtime";
        }
    };

    private TestActors() {
    }

    /** An actor on strings. */
    static class Text {
        String upper(String s) {
            return s.toUpperCase(Locale.ROOT);
        }

        String lower(String s) {
            return s.toLowerCase(Locale.ROOT);
        }

        String concat(String a, String b) {
            return a + b;
        }

        String join3(String a, String b, String c) {
            return a + b + c;
        }

        String repeat(String s, int times) {
            return s.repeat(times);
        }

        String hello() {
            return "hello";
        }

        Integer length(String s) {
            return s.length();
        }
    }

    /** A subclass, to check that a method declared by a superclass binds on it. */
    static final class LoudText extends Text {
        @Override
        String upper(String s) {
            return super.upper(s) + "!";
        }
    }

    /** An actor on numbers. */
    static final class Num {
        int inc(int x) {
            return x + 1;
        }

        Integer boxedInc(Integer x) {
            return x + 1;
        }

        int add(int a, int b) {
            return a + b;
        }

        Integer number(String s) {
            return Integer.valueOf(s);
        }

        <T> T echo(T value) {
            return value;
        }

        List<Integer> list(Integer x) {
            return List.of(x);
        }

        ArrayList<Integer> arrayList(Integer x) {
            return new ArrayList<>(List.of(x));
        }

        Integer size(Collection<Integer> c) {
            return c.size();
        }

        Integer first(ArrayList<Integer> l) {
            return l.get(0);
        }

        Integer ofNumber(Number n) {
            return n.intValue();
        }

        Integer ofRunnable(Runnable r) {
            return r.hashCode();
        }

        Integer ofMap(Map<String, Integer> m) {
            return m.size();
        }

        Void nothing(Integer x) {
            return null;
        }
    }

    static ActorRef<Text> text(int id, String name) {
        return GraphInternals.actorRef(id, name, Text.class, RUNTIME);
    }

    static ActorRef<Num> num(int id, String name) {
        return GraphInternals.actorRef(id, name, Num.class, RUNTIME);
    }

    /** @return a topology with every given actor in the driver's JVM */
    static Topology topology(ActorRef<?>... actors) {
        Map<Integer, ActorPlacement> placement = new HashMap<>();
        for (ActorRef<?> a : actors) {
            placement.put(a.id(), ActorPlacement.IN_DRIVER);
        }
        return new Topology(ActorPlacement.IN_DRIVER, placement);
    }
}
