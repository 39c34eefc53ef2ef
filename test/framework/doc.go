// Package framework holds the helpers that integration and e2e tests share: one test bed per
// test package, started from TestMain, and small polling and namespace helpers.
package framework
