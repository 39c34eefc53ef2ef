// Package controller reconciles CronHorizontalPodAutoscalers: it gathers an object's jobs and
// status, decides with pure functions what is due (decide.go), scales the target through the
// /scale subresource or an HPA's bounds (scaler.go) and writes status once (status.go).
package controller
