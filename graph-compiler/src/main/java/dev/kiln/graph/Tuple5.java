package dev.kiln.graph;

/**
 * Five values: the input of a graph built on {@link Graph#input5()}.
 *
 * @param first   the first value
 * @param second  the second value
 * @param third   the third value
 * @param fourth  the fourth value
 * @param fifth   the fifth value
 * @param <A>     the first value's type
 * @param <B>     the second value's type
 * @param <C>     the third value's type
 * @param <D>     the fourth value's type
 * @param <E>     the fifth value's type
 */
public record Tuple5<A, B, C, D, E>(A first, B second, C third, D fourth, E fifth) {
}
