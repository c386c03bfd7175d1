package dev.kiln.graph;

/**
 * Eight values: the input of a graph built on {@link Graph#input8()}.
 *
 * @param first   the first value
 * @param second  the second value
 * @param third   the third value
 * @param fourth  the fourth value
 * @param fifth   the fifth value
 * @param sixth   the sixth value
 * @param seventh the seventh value
 * @param eighth  the eighth value
 * @param <A>     the first value's type
 * @param <B>     the second value's type
 * @param <C>     the third value's type
 * @param <D>     the fourth value's type
 * @param <E>     the fifth value's type
 * @param <F>     the sixth value's type
 * @param <G>     the seventh value's type
 * @param <H>     the eighth value's type
 */
public record Tuple8<A, B, C, D, E, F, G, H>(
        A first, B second, C third, D fourth, E fifth, F sixth, G seventh, H eighth) {
}
